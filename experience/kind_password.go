package experience

import (
	"context"
	"errors"

	"github.com/latch-dev/latch/credentials"
)

// AddPasswordVerification creates a verified Password record (the engine
// path shared with POST /v1/auth/password/authenticate).
func (e *Engine) AddPasswordVerification(ctx context.Context, handle, clientID string, id Identifier, password string, meta SessionMeta) (string, error) {
	if _, err := e.interactions.load(ctx, handle, clientID); err != nil {
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
	rec := &Record{ID: credentials.RandomID(20), Type: RecordPassword, Identifier: &id, Verified: true, UserID: user.ID}
	if _, err := e.interactions.update(ctx, handle, clientID, func(in *Interaction) error {
		in.Records = append(in.Records, rec)
		return nil
	}); err != nil {
		return "", err
	}
	return rec.ID, nil
}
