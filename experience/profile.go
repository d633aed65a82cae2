package experience

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/latch-dev/latch/credentials"
	"github.com/latch-dev/latch/experience/directory"
	"github.com/latch-dev/latch/fault"
)

// ProfileInput is one POST /profile request.
type ProfileInput struct {
	Type           string // username, password, email, phone, extraProfile
	Value          string
	VerificationID string
	Name           *string
	CustomData     json.RawMessage
}

// AddProfile adds profile data to the interaction: before identification
// (Register) it shapes the new account; after, it updates the user at
// submit.
func (e *Engine) AddProfile(ctx context.Context, handle, clientID string, p ProfileInput) error {
	in, err := e.interactions.load(ctx, handle, clientID)
	if err != nil {
		return err
	}
	if in.Event == EventForgotPasswordFlow {
		return fault.New(CodeNotForForgotPassword, http.StatusBadRequest, "Profile data cannot be added in a ForgotPassword interaction.")
	}
	if in.Event == EventSignInFlow && in.UserID == "" {
		return errNotIdentified()
	}
	var user *User
	if in.UserID != "" {
		if user, err = e.Users.Get(ctx, in.UserID); err != nil {
			return err
		}
		// Seed 004: in a SignIn, a user with MFA must prove it before
		// changing anything about the account — else a password alone could
		// swap the e-mail that receives the MFA codes.
		if err := e.requireMFAForChange(ctx, in, user); err != nil {
			return err
		}
	}
	var apply func(*pendingProfile)
	switch p.Type {
	case "username":
		v := p.Value
		key, err := e.norm.Normalize(Identifier{Type: IdentifierUsername, Value: v})
		if err != nil {
			return err
		}
		if err := e.checkFree(ctx, IdentifierUsername, key, user); err != nil {
			return err
		}
		apply = func(pp *pendingProfile) { pp.Username = &v }
	case "password":
		info := credentials.UserInfo{}
		if user != nil {
			info = user.Info()
		} else if in.Profile.Username != nil {
			info.Username = *in.Profile.Username
		}
		hash, err := e.newPasswordHash(ctx, p.Value, info, user, CodePasswordRejected)
		if err != nil {
			return err
		}
		apply = func(pp *pendingProfile) { pp.PasswordHash = hash }
	case IdentifierEmail, IdentifierPhone:
		if p.VerificationID == "" {
			return fault.New(CodeVerificationFailed, http.StatusBadRequest, "A verified code record (verificationId) is required for %s.", p.Type)
		}
		v := in.record(p.VerificationID)
		if v == nil {
			return errRecordNotFound()
		}
		rec, ok := v.(registering)
		proved := v.Proof().Identifier
		if !ok || !v.Verified() || proved == nil || proved.Type != p.Type {
			return fault.New(CodeVerificationFailed, http.StatusBadRequest, "The verification record is not verified for this %s.", p.Type)
		}
		if err := e.checkFree(ctx, p.Type, proved.Value, user); err != nil {
			return err
		}
		apply = func(pp *pendingProfile) { rec.applyTo(pp) }
	case "extraProfile":
		probe := &directory.Row{CustomData: "{}", UsernameKey: new(string)}
		if err := e.Users.Apply(probe, Profile{Name: p.Name, CustomData: p.CustomData}); err != nil {
			return err
		}
		apply = func(pp *pendingProfile) {
			if p.Name != nil {
				pp.Name = p.Name
			}
			if p.CustomData != nil {
				pp.CustomData = p.CustomData
			}
		}
	default:
		return fault.Invalid(fault.Detail{Field: "type", Message: "must be username, password, email, phone or extraProfile"})
	}
	_, err = e.interactions.update(ctx, handle, clientID, func(in *Interaction) error {
		apply(&in.Profile)
		return nil
	})
	return err
}

// checkFree refuses an identifier used by another account (for a username,
// also one that looks like another account's, or mixes scripts).
func (e *Engine) checkFree(ctx context.Context, idType, normalized string, self *User) error {
	var other *User
	var err error
	if idType == IdentifierUsername {
		other, err = e.Users.UsernameHolder(ctx, normalized)
	} else {
		other, err = e.Users.FindByIdentifier(ctx, idType, normalized)
	}
	if err != nil {
		return err
	}
	if other == nil || (self != nil && other.ID == self.ID) {
		return nil
	}
	switch idType {
	case IdentifierEmail:
		return fault.New(CodeEmailInUse, http.StatusUnprocessableEntity, "The email address is already in use.")
	case IdentifierPhone:
		return fault.New(CodePhoneInUse, http.StatusUnprocessableEntity, "The phone number is already in use.")
	}
	return directory.ErrUsernameTaken()
}

// ResetPasswordInInteraction sets the new password of a ForgotPassword
// interaction; submit stores it.
func (e *Engine) ResetPasswordInInteraction(ctx context.Context, handle, clientID, password string) error {
	in, err := e.interactions.load(ctx, handle, clientID)
	if err != nil {
		return err
	}
	if in.Event != EventForgotPasswordFlow {
		return fault.New("session.invalid_interaction_type", http.StatusBadRequest, "The password can only be reset in a ForgotPassword interaction.")
	}
	if in.UserID == "" {
		return errNotIdentified()
	}
	user, err := e.Users.Get(ctx, in.UserID)
	if err != nil {
		return err
	}
	if user.HasPassword {
		same, _, err := e.hasher.Verify(ctx, password, user.PasswordHash())
		if err != nil {
			return err
		}
		if same {
			return fault.New(CodeSamePassword, http.StatusUnprocessableEntity, "The new password must differ from the current one.")
		}
	}
	hash, err := e.newPasswordHash(ctx, password, user.Info(), user, CodePasswordPolicyViolation)
	if err != nil {
		return err
	}
	_, err = e.interactions.update(ctx, handle, clientID, func(in *Interaction) error {
		in.NewPasswordHash = hash
		return nil
	})
	return err
}

// checkProfileFree refuses pending identifiers another account took since
// they were added (the database's unique indexes stay the last word).
func (e *Engine) checkProfileFree(ctx context.Context, p pendingProfile, user *User) error {
	pairs := []struct {
		idType string
		value  *string
	}{{IdentifierUsername, p.Username}, {IdentifierEmail, p.Email}, {IdentifierPhone, p.Phone}}
	for _, pair := range pairs {
		if pair.value == nil {
			continue
		}
		key, err := e.norm.Normalize(Identifier{Type: pair.idType, Value: *pair.value})
		if err != nil {
			return err
		}
		if err := e.checkFree(ctx, pair.idType, key, user); err != nil {
			return err
		}
	}
	return nil
}
