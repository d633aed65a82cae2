package experience

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"gorm.io/gorm"

	"github.com/latch-dev/latch/credentials"
	"github.com/latch-dev/latch/fault"
	"github.com/latch-dev/latch/store"
)

// Interaction events.
const (
	EventSignInFlow         = "SignIn"
	EventRegisterFlow       = "Register"
	EventForgotPasswordFlow = "ForgotPassword"
)

// interactionTTL bounds an interaction's life (DESIGN §2.5).
const interactionTTL = time.Hour

// Experience API error codes.
const (
	CodeInteractionNotFound     = "session.not_found"
	CodeEventNotEnabled         = "session.interaction_event_not_enabled"
	CodeNotForForgotPassword    = "session.not_supported_for_forgot_password"
	CodeVerificationFailed      = "session.verification_failed"
	CodeRecordNotFound          = "session.verification_session_not_found"
	CodeIdentifierNotFound      = "session.identifier_not_found"
	CodeIdentityConflict        = "session.identity_conflict"
	CodeInvalidTarget           = "guard.invalid_target"
	CodeUserNotExist            = "user.user_not_exist"
	CodeMissingProfile          = "user.missing_profile"
	CodePasswordPolicyViolation = "user.password_policy_violation"
	CodeConnectorNotFound       = "connector.not_found"
	CodeMethodNotEnabled        = "user.sign_in_method_not_enabled"
	CodeInteractionConflict     = "session.interaction_conflict"
)

// ErrInteractionNotFound is the answer for an unknown, expired or foreign
// interaction.
func ErrInteractionNotFound() *fault.Error { return errInteractionNotFound() }

func errInteractionNotFound() *fault.Error {
	return fault.New(CodeInteractionNotFound, http.StatusNotFound, "The interaction does not exist or has expired; start a new one.")
}

func errRecordNotFound() *fault.Error {
	return fault.New(CodeRecordNotFound, http.StatusNotFound, "The verification record does not exist.")
}

func errNotIdentified() *fault.Error {
	return fault.New(CodeIdentifierNotFound, http.StatusNotFound, "The interaction has not identified a user yet.")
}

// pendingProfile is profile data waiting for identification or submit.
type pendingProfile struct {
	Username     *string         `json:"username,omitempty"`
	Email        *string         `json:"email,omitempty"`
	Phone        *string         `json:"phone,omitempty"`
	Name         *string         `json:"name,omitempty"`
	CustomData   json.RawMessage `json:"custom_data,omitempty"`
	PasswordHash string          `json:"password_hash,omitempty"`
	// Verified addresses (proved with a code record).
	EmailVerified bool `json:"email_verified,omitempty"`
	PhoneVerified bool `json:"phone_verified,omitempty"`
}

// Interaction is the state of one sign-in, registration or recovery.
type Interaction struct {
	ClientID string          `json:"client_id"`
	Event    string          `json:"event"`
	UserID   string          `json:"user_id,omitempty"`
	Records  records         `json:"records"`
	Profile  pendingProfile  `json:"profile"`
	MFA      map[string]bool `json:"mfa,omitempty"`
	// MFASkipped: the user chose not to bind a factor (policy permitting).
	MFASkipped bool `json:"mfa_skipped,omitempty"`
	// Federated: the user was identified (or created) by a social or SSO
	// sign-in, which needs no password of Latch's.
	Federated bool `json:"federated,omitempty"`
	// NewPasswordHash is the ForgotPassword flow's new password.
	NewPasswordHash string `json:"new_password_hash,omitempty"`
	// Hosted: started by an authorization request for Latch's hosted
	// pages, and owned by the authorizing client without its having
	// asked. Its submit may only answer that request (a redirect back to
	// it); once the request is gone it must not answer with tokens as an
	// integrator's interaction does.
	Hosted bool `json:"hosted,omitempty"`

	id        string
	version   int
	expiresAt time.Time
}

// record returns the record with id, or nil.
func (in *Interaction) record(id string) Verification {
	for _, r := range in.Records {
		if r.RecordID() == id {
			return r
		}
	}
	return nil
}

// replace swaps in a record (by id), or appends it.
func (in *Interaction) replace(v Verification) {
	for i, r := range in.Records {
		if r.RecordID() == v.RecordID() {
			in.Records[i] = v
			return
		}
	}
	in.Records = append(in.Records, v)
}

type interactionRow struct {
	ID        string `gorm:"primaryKey"`
	ClientID  string
	Event     string
	Data      string
	Version   int
	CreatedAt time.Time
	UpdatedAt time.Time
	ExpiresAt time.Time
}

func (interactionRow) TableName() string { return "interactions" }

// Interactions stores interactions. The handle a client holds (cookie or
// header) is an unguessable token; only its digest is stored, so the table
// alone does not let anyone resume an interaction. Writes use optimistic
// concurrency on a version column.
type Interactions struct {
	db  *store.DB
	now func() time.Time
}

// create stores a new interaction and returns its handle.
func (s *Interactions) create(ctx context.Context, clientID, event string, hosted bool) (string, error) {
	handle := "lxi_" + credentials.RandomToken(32)
	now := s.now()
	in := Interaction{ClientID: clientID, Event: event, Records: records{}, Hosted: hosted}
	data, _ := json.Marshal(in)
	row := interactionRow{ID: credentials.Digest(handle), ClientID: clientID, Event: event, Data: string(data), Version: 1,
		CreatedAt: now, UpdatedAt: now, ExpiresAt: now.Add(interactionTTL)}
	if err := s.db.WithContext(ctx).Create(&row).Error; err != nil {
		return "", fmt.Errorf("experience: create interaction: %w", err)
	}
	s.db.WithContext(ctx).Where("expires_at < ?", now).Delete(&interactionRow{})
	return handle, nil
}

// owner returns the client of the live interaction behind a handle.
func (s *Interactions) owner(ctx context.Context, handle string) (string, error) {
	if handle == "" || len(handle) > 128 {
		return "", errInteractionNotFound()
	}
	var row interactionRow
	err := s.db.WithContext(ctx).Select("client_id", "expires_at").Where("id = ?", credentials.Digest(handle)).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) || (err == nil && !s.now().Before(row.ExpiresAt)) {
		return "", errInteractionNotFound()
	}
	if err != nil {
		return "", fmt.Errorf("experience: load interaction: %w", err)
	}
	return row.ClientID, nil
}

// load returns the interaction behind a handle for its own client.
func (s *Interactions) load(ctx context.Context, handle, clientID string) (*Interaction, error) {
	if handle == "" || len(handle) > 128 {
		return nil, errInteractionNotFound()
	}
	in, err := s.loadID(ctx, credentials.Digest(handle))
	// Another client's interaction is as good as absent.
	if err == nil && in.ClientID != clientID {
		return nil, errInteractionNotFound()
	}
	return in, err
}

// loadID returns the live interaction stored under id (its handle's
// digest), whichever its client: for a provider's post back (SAML), which
// carries no handle.
func (s *Interactions) loadID(ctx context.Context, id string) (*Interaction, error) {
	var row interactionRow
	err := s.db.WithContext(ctx).Where("id = ?", id).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, errInteractionNotFound()
	}
	if err != nil {
		return nil, fmt.Errorf("experience: load interaction: %w", err)
	}
	if !s.now().Before(row.ExpiresAt) {
		return nil, errInteractionNotFound()
	}
	in := &Interaction{}
	if err := json.Unmarshal([]byte(row.Data), in); err != nil {
		// State this version cannot read (written before the verification
		// kinds had their own state, and cleared by the migration that came
		// with them): an interaction lives an hour at most, so it is as good
		// as expired, and the client starts a new one.
		return nil, errInteractionNotFound()
	}
	in.ClientID = row.ClientID
	in.id, in.version, in.expiresAt = row.ID, row.Version, row.ExpiresAt
	return in, nil
}

// save writes in if nobody else wrote it since it was loaded.
func (s *Interactions) save(ctx context.Context, in *Interaction) error {
	data, err := json.Marshal(in)
	if err != nil {
		return err
	}
	res := s.db.WithContext(ctx).Model(&interactionRow{}).Where("id = ? AND version = ?", in.id, in.version).
		Updates(map[string]any{"data": string(data), "event": in.Event, "version": in.version + 1, "updated_at": s.now()})
	if res.Error != nil {
		return fmt.Errorf("experience: save interaction: %w", res.Error)
	}
	if res.RowsAffected != 1 {
		return errConflict
	}
	in.version++
	return nil
}

var errConflict = fault.New(CodeInteractionConflict, http.StatusConflict,
	"The interaction was changed by a concurrent request; retry.")

// delete ends an interaction.
func (s *Interactions) delete(ctx context.Context, in *Interaction) error {
	return s.deleteTx(s.db.WithContext(ctx), in)
}

// deleteTx ends an interaction through db (a transaction).
func (s *Interactions) deleteTx(db *gorm.DB, in *Interaction) error {
	if err := db.Where("id = ?", in.id).Delete(&interactionRow{}).Error; err != nil {
		return fmt.Errorf("experience: delete interaction: %w", err)
	}
	return nil
}

// claim is claimTx on its own.
func (s *Interactions) claim(ctx context.Context, in *Interaction) error {
	return s.claimTx(s.db.WithContext(ctx), in)
}

// claimTx ends an interaction inside tx if nobody wrote it since it was
// loaded: of parallel submits of one interaction exactly one claims it, the
// others find it gone (or changed) and roll back everything they did.
func (s *Interactions) claimTx(tx *gorm.DB, in *Interaction) error {
	res := tx.Where("id = ? AND version = ?", in.id, in.version).Delete(&interactionRow{})
	if res.Error != nil {
		return fmt.Errorf("experience: claim interaction: %w", res.Error)
	}
	if res.RowsAffected == 1 {
		return nil
	}
	var n int64
	if err := tx.Model(&interactionRow{}).Where("id = ?", in.id).Count(&n).Error; err != nil {
		return fmt.Errorf("experience: claim interaction: %w", err)
	}
	if n > 0 {
		return errConflict
	}
	return errInteractionNotFound()
}

// fields names the profile fields a pending profile changes.
func (p pendingProfile) fields() []string {
	out := Profile{Username: p.Username, Email: p.Email, Phone: p.Phone, Name: p.Name, CustomData: p.CustomData}.Fields()
	if p.PasswordHash != "" {
		out = append(out, "password")
	}
	return out
}

// update loads an interaction, applies fn and saves it, retrying a few
// times when a concurrent request wrote in between. fn must not have side
// effects beyond changing the interaction, since it may run again.
func (s *Interactions) update(ctx context.Context, handle, clientID string, fn func(in *Interaction) error) (*Interaction, error) {
	return s.retry(ctx, func() (*Interaction, error) { return s.load(ctx, handle, clientID) }, fn)
}

// updateID is update of the interaction stored under id (loadID).
func (s *Interactions) updateID(ctx context.Context, id string, fn func(in *Interaction) error) (*Interaction, error) {
	return s.retry(ctx, func() (*Interaction, error) { return s.loadID(ctx, id) }, fn)
}

func (s *Interactions) retry(ctx context.Context, load func() (*Interaction, error), fn func(in *Interaction) error) (*Interaction, error) {
	for attempt := 0; ; attempt++ {
		in, err := load()
		if err != nil {
			return nil, err
		}
		if err := fn(in); err != nil {
			return nil, err
		}
		err = s.save(ctx, in)
		if err == nil {
			return in, nil
		}
		if !errors.Is(err, errConflict) || attempt == 4 {
			return nil, err
		}
	}
}

// InteractionView is the sanitised state a client may read.
type InteractionView struct {
	Event     string       `json:"interactionEvent"`
	UserID    string       `json:"userId,omitempty"`
	ExpiresAt time.Time    `json:"expiresAt"`
	Records   []RecordView `json:"verificationRecords"`
	Profile   ProfileView  `json:"profile"`
}

// RecordView is a verification record without secrets.
type RecordView struct {
	ID         string      `json:"id"`
	Type       string      `json:"type"`
	Identifier *Identifier `json:"identifier,omitempty"`
	Verified   bool        `json:"verified"`
}

// ProfileView is the pending profile without the password hash.
type ProfileView struct {
	Username    *string `json:"username,omitempty"`
	Email       *string `json:"primaryEmail,omitempty"`
	Phone       *string `json:"primaryPhone,omitempty"`
	Name        *string `json:"name,omitempty"`
	HasPassword bool    `json:"hasPassword"`
}

func (in *Interaction) view() *InteractionView {
	v := &InteractionView{Event: in.Event, UserID: in.UserID, ExpiresAt: in.expiresAt, Records: []RecordView{},
		Profile: ProfileView{Username: in.Profile.Username, Email: in.Profile.Email, Phone: in.Profile.Phone,
			Name: in.Profile.Name, HasPassword: in.Profile.PasswordHash != "" || in.NewPasswordHash != ""}}
	for _, r := range in.Records {
		v.Records = append(v.Records, RecordView{ID: r.RecordID(), Type: r.Kind(), Identifier: r.Proof().Identifier, Verified: r.Verified()})
	}
	return v
}
