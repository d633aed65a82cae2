package experience

import (
	"context"
	"errors"
)

// RecordPassword is the Password verification: an identifier and its
// password, checked under the sentinel (seed 000).
const RecordPassword = "Password"

func init() { registerKind(RecordPassword, func() Verification { return &passwordRecord{} }) }

type passwordRecord struct {
	record
	Identifier Identifier `json:"identifier"`
	UserID     string     `json:"user_id"`
}

func (r *passwordRecord) Kind() string { return RecordPassword }

func (r *passwordRecord) Proof() Proof {
	id := r.Identifier
	return Proof{Identifier: &id, UserID: r.UserID, Method: AMRPassword, FirstFactor: true}
}

// identifies: a password signs in; it proves nothing to recover (the user
// who knows it needs no recovery) nor to register.
func (r *passwordRecord) identifies(event string) bool { return event == EventSignInFlow }

// AddPasswordVerification creates a verified Password record (the engine
// path shared with POST /v1/auth/password/authenticate).
func (e *Engine) AddPasswordVerification(ctx context.Context, handle, clientID string, id Identifier, password string, meta SessionMeta) (string, error) {
	if _, err := e.interactions.load(ctx, handle, clientID); err != nil {
		return "", err
	}
	if err := e.requireNotSSO(ctx, id); err != nil {
		return "", err
	}
	user, err := e.VerifyPassword(ctx, id, password, meta)
	var state *passwordStateError
	if errors.As(err, &state) {
		return "", state.fe
	}
	if err != nil {
		return "", err
	}
	rec := &passwordRecord{record: newRecord(), Identifier: id, UserID: user.ID}
	rec.markVerified()
	return e.addRecord(ctx, handle, clientID, rec)
}
