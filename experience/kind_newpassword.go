package experience

import (
	"context"
	"net/http"

	"github.com/latch-dev/latch/credentials"
	"github.com/latch-dev/latch/fault"
)

// RecordNewPasswordIdentity is a new account's username and password,
// checked (free, and within the password policy) for Register.
const RecordNewPasswordIdentity = "NewPasswordIdentity"

func init() {
	registerKind(RecordNewPasswordIdentity, func() Verification { return &newPasswordRecord{} })
}

type newPasswordRecord struct {
	record
	Identifier Identifier `json:"identifier"`
	// PasswordHash is the new password's hash; it never leaves the engine.
	PasswordHash string `json:"password_hash"`
}

func (r *newPasswordRecord) Kind() string { return RecordNewPasswordIdentity }

func (r *newPasswordRecord) Proof() Proof {
	id := r.Identifier
	return Proof{Identifier: &id, Method: AMRPassword, FirstFactor: true}
}

// applyTo: the new account gets the username and the password.
func (r *newPasswordRecord) applyTo(p *pendingProfile) {
	v := r.Identifier.Value
	p.Username, p.PasswordHash = &v, r.PasswordHash
}

// AddNewPasswordIdentity creates a NewPasswordIdentity record: a username
// that is free and a password that passes the policy, for registration.
func (e *Engine) AddNewPasswordIdentity(ctx context.Context, handle, clientID string, id Identifier, password string) (string, error) {
	if _, err := e.interactions.load(ctx, handle, clientID); err != nil {
		return "", err
	}
	if id.Type != IdentifierUsername {
		return "", fault.Invalid(fault.Detail{Field: "identifier.type", Message: "must be username"})
	}
	normalized, err := e.norm.Normalize(id)
	if err != nil {
		return "", err
	}
	if err := e.checkFree(ctx, IdentifierUsername, normalized, nil); err != nil {
		return "", err
	}
	hash, err := e.newPasswordHash(ctx, password, credentials.UserInfo{Username: id.Value}, nil, CodePasswordRejected)
	if err != nil {
		return "", err
	}
	rec := &newPasswordRecord{record: newRecord(), Identifier: Identifier{Type: IdentifierUsername, Value: id.Value}, PasswordHash: hash}
	rec.markVerified()
	return e.addRecord(ctx, handle, clientID, rec)
}

// newPasswordHash checks a new password (policy, and history for an
// existing user) and hashes it; violations are reported under code.
func (e *Engine) newPasswordHash(ctx context.Context, password string, info credentials.UserInfo, user *User, code string) (string, error) {
	if len(password) > maxPasswordBytes {
		return "", fault.New(code, http.StatusUnprocessableEntity, "The password is too long.").
			With("issues", []credentials.Violation{{Code: "password_rejected.too_long", Message: "The password is too long."}})
	}
	violations, err := e.ValidatePassword(ctx, password, info, user)
	if err != nil {
		return "", err
	}
	if len(violations) > 0 {
		return "", fault.New(code, http.StatusUnprocessableEntity, "%s", violations[0].Message).With("issues", violations)
	}
	return e.hasher.Hash(ctx, password)
}
