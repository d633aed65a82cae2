package experience

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/latch-dev/latch/credentials"
)

// A Verification is one verification record of an interaction: something
// the user proved (a password, a code, an authenticator) and what that
// proof is worth. Each kind is its own type, in its own kind_*.go file,
// with its own state; the interaction holds them in order and knows none of
// them. Adding a kind (social, enterprise SSO) means adding a file that
// registers it — no switch to extend elsewhere.
type Verification interface {
	// RecordID is the verificationId the client holds.
	RecordID() string
	// Kind is seed 004's type name (Password, EmailVerificationCode, Totp…).
	Kind() string
	// Verified reports whether the proof succeeded.
	Verified() bool
	// Proof is what a verified record proves.
	Proof() Proof
}

// Proof is what a verified record establishes.
type Proof struct {
	// Identifier is an identifier the user showed they control (the
	// password's identifier, the address a code reached), if any.
	Identifier *Identifier
	// UserID is the account the proof belongs to, if known.
	UserID string
	// Method is the RFC 8176 method reference the proof adds to a sign-in
	// ("" when it proves no sign-in method, as a new set of backup codes).
	Method string
	// FirstFactor: the proof can identify the user and count as the
	// sign-in's first factor (a password, a code to an identifier); an MFA
	// factor proven afterwards must use another method.
	FirstFactor bool
}

// identifying is a kind that can identify a user (POST /identification).
type identifying interface {
	Verification
	// identifies says in which interaction events the record identifies.
	identifies(event string) bool
}

// registering is a kind whose proof can shape a new account (Register).
type registering interface {
	Verification
	applyTo(p *pendingProfile)
}

// enrolling is a kind whose verified record enrols a new MFA factor
// (POST /profile/mfa); see mfa_bind.go.
type enrolling interface {
	Verification
	// factor is the factor type it enrols.
	factor() string
	// enrolment is what binding writes for user: the factor row and, for
	// backup codes, the code digests.
	enrolment(e *Engine, user *User, existing []Factor) (*enrolment, error)
	// forget drops the secret it carried once the factor holds it.
	forget()
}

// record is the state every kind shares.
type record struct {
	ID   string `json:"id"`
	Done bool   `json:"verified"`
}

func newRecord() record            { return record{ID: credentials.RandomID(20)} }
func (r *record) RecordID() string { return r.ID }
func (r *record) Verified() bool   { return r.Done }
func (r *record) markVerified()    { r.Done = true }

// kinds maps a kind's name to a constructor of its empty state, for
// decoding stored interactions. Each kind_*.go registers itself in init.
var kinds = map[string]func() Verification{}

func registerKind(kind string, empty func() Verification) {
	if _, dup := kinds[kind]; dup {
		panic("experience: verification kind registered twice: " + kind)
	}
	kinds[kind] = empty
}

// records is an interaction's verification records, stored as
// {"type": kind, "state": …} so each kind serialises its own state.
type records []Verification

type storedRecord struct {
	Type  string          `json:"type"`
	State json.RawMessage `json:"state"`
}

func (rs records) MarshalJSON() ([]byte, error) {
	out := make([]storedRecord, 0, len(rs))
	for _, r := range rs {
		state, err := json.Marshal(r)
		if err != nil {
			return nil, err
		}
		out = append(out, storedRecord{Type: r.Kind(), State: state})
	}
	return json.Marshal(out)
}

func (rs *records) UnmarshalJSON(b []byte) error {
	var stored []storedRecord
	if err := json.Unmarshal(b, &stored); err != nil {
		return err
	}
	out := make(records, 0, len(stored))
	for _, s := range stored {
		empty, ok := kinds[s.Type]
		if !ok || len(s.State) == 0 {
			return fmt.Errorf("experience: unknown verification record kind %q", s.Type)
		}
		v := empty()
		if err := json.Unmarshal(s.State, v); err != nil {
			return fmt.Errorf("experience: %s record: %w", s.Type, err)
		}
		out = append(out, v)
	}
	*rs = out
	return nil
}

// recordAs returns the record with id if it is of kind T.
func recordAs[T Verification](in *Interaction, id string) (T, bool) {
	var zero T
	v := in.record(id)
	if v == nil {
		return zero, false
	}
	t, ok := v.(T)
	return t, ok
}

// addRecord appends a record to an interaction and returns its id.
func (e *Engine) addRecord(ctx context.Context, handle, clientID string, rec Verification) (string, error) {
	_, err := e.interactions.update(ctx, handle, clientID, func(in *Interaction) error {
		in.Records = append(in.Records, rec)
		return nil
	})
	return rec.RecordID(), err
}

// replaceRecord stores a changed record in its interaction.
func (e *Engine) replaceRecord(ctx context.Context, handle, clientID string, rec Verification) error {
	_, err := e.interactions.update(ctx, handle, clientID, func(in *Interaction) error {
		if in.record(rec.RecordID()) == nil {
			return errRecordNotFound()
		}
		in.replace(rec)
		return nil
	})
	return err
}

// markMFA stores a record (if any) and notes in the interaction that a
// factor was proven.
func (e *Engine) markMFA(ctx context.Context, handle, clientID string, rec Verification, factor string) error {
	_, err := e.interactions.update(ctx, handle, clientID, func(in *Interaction) error {
		if rec != nil {
			in.replace(rec)
		}
		if in.MFA == nil {
			in.MFA = map[string]bool{}
		}
		in.MFA[factor] = true
		return nil
	})
	return err
}
