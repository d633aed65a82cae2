package experience

import (
	"context"
	"errors"
	"fmt"

	"gorm.io/gorm"

	"github.com/latch-dev/latch/experience/messaging"
	"github.com/latch-dev/latch/fault"
)

// guardFactor runs check under the user's sentinel pool for a factor.
func (e *Engine) guardFactor(ctx context.Context, user *User, factor string, check func() error) error {
	settings, err := e.Settings.Get(ctx)
	if err != nil {
		return err
	}
	key := factorKey(user.ID, factor)
	verdict, err := e.Sentinel.Reserve(ctx, key, settings.Lockout)
	if err != nil {
		return err
	}
	if !verdict.Allowed {
		return errLocked(verdict.RetryAfter)
	}
	// Whatever is not settled below (an error, a request that ended) is
	// given back: it was not evaluated.
	defer e.releaseUnsettled(ctx, verdict)
	if err := check(); err != nil {
		var fe *fault.Error
		if errors.As(err, &fe) && fe.Status < 500 && ctx.Err() == nil {
			if _, ferr := e.Sentinel.Fail(ctx, verdict); ferr != nil {
				return ferr
			}
		}
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return e.Sentinel.Clear(ctx, verdict)
}

// MFAChallenge completes a pending (or steps up an active) backend session
// with a second factor.
type MFAChallenge struct {
	SessionID  string
	Factor     string // totp, backup_code, otp
	Code       string
	Meta       SessionMeta
	EnforceMFA bool
}

// CompleteMFA verifies a factor for a session and activates it. The
// sign-in is in the organization context req.Meta.OrgID names (membership
// checked), or else in the one the session records — the organization the
// password sign-in named or discovered — while the user is still a member
// of it (otherwise that context has ended and the sign-in is a plain one).
func (e *Engine) CompleteMFA(ctx context.Context, req MFAChallenge) (*SignIn, error) {
	requested, err := e.requestedOrg(ctx, req.Meta.OrgID)
	if err != nil {
		return nil, err
	}
	sess, err := e.sessionFor(ctx, req.SessionID, req.Meta, false)
	if err != nil {
		return nil, err
	}
	user, err := e.Users.Get(ctx, sess.UserID)
	if err != nil {
		if fault.Is(err, CodeUserNotFound) {
			return nil, errSessionNotFound()
		}
		return nil, err
	}
	if user.Suspended {
		return nil, errSuspended
	}
	var org *OrgContext
	if requested != nil {
		if org, err = e.orgAccess(ctx, requested, user.ID); err != nil {
			if fault.Is(err, CodeOrgMembershipRequired) {
				e.refuseOrg(ctx, user, req.Meta, req.Factor, requested.ID)
			}
			return nil, err
		}
	} else if sess.OrgID != "" {
		if org, err = e.OrgMemberContext(ctx, sess.OrgID, user.ID); err != nil {
			return nil, err
		}
	}
	var amr string
	switch req.Factor {
	case FactorTOTP:
		err, amr = e.verifyEnrolledTOTP(ctx, user, req.Code), AMRTOTP
	case FactorBackupCode:
		err, amr = e.useBackupCode(ctx, user, req.Code), AMRBackupCode
	case "otp":
		err, amr = e.verifySessionOTP(ctx, user, sess, req.Code), AMROTP
	default:
		err = fault.Invalid(fault.Detail{Field: "factor", Message: "unsupported factor"})
	}
	if err != nil {
		return nil, err
	}
	if org.requiresMFA() && !hasAMR(mergeAMR(sess.AMR, amr), AMRMFA) {
		// One method twice is not MFA (a code to the inbox that signed in).
		return nil, e.orgStepUp(ctx, user, sess)
	}
	var out *Session
	err = e.db.Tx(ctx, func(tx *gorm.DB) error {
		var err error
		if out, err = e.Sessions.authenticate(ctx, tx, sess, user.ID, []string{amr}, false, SessionMeta{ClientID: sess.ClientID, OrgID: org.orgID()}); err != nil {
			return err
		}
		return e.markSignedIn(tx, user, out, out.AMR, req.Meta)
	})
	if err != nil {
		return nil, err
	}
	return &SignIn{User: user, Session: out, Org: org}, nil
}

// SendSessionOTP sends a one-time code for a backend session to the user's
// email or phone ("email" or "sms").
func (e *Engine) SendSessionOTP(ctx context.Context, sessionID, channel string, meta SessionMeta) error {
	sess, err := e.sessionFor(ctx, sessionID, meta, false)
	if err != nil {
		return err
	}
	user, err := e.Users.Get(ctx, sess.UserID)
	if err != nil {
		return err
	}
	if user.Suspended {
		return errSuspended
	}
	id, err := mfaCodeIdentifier(user, channel)
	if err != nil {
		return err
	}
	settings, err := e.Settings.Get(ctx)
	if err != nil {
		return err
	}
	if err := mfaChannelEnabled(settings, id.Type); err != nil {
		return err
	}
	// Seed 001's order: a channel without a connector is 501 whoever asks.
	if _, err := e.sender(id.Type); err != nil {
		return err
	}
	factors, err := e.Factors.List(ctx, user.ID)
	if err != nil {
		return err
	}
	if !codeFactorUsable(factors, user, id.Type, settings) {
		return errCodeFactorNotEnrolled(id.Type)
	}
	_, err = e.issueCode(ctx, messaging.PurposeMfaVerification, id, id.Value, "session:"+sess.ID, true, false, settings)
	return err
}

// verifySessionOTP checks the newest code sent for a session.
func (e *Engine) verifySessionOTP(ctx context.Context, user *User, sess *Session, code string) error {
	var row codeRow
	err := e.db.WithContext(ctx).Where("purpose = ? AND client_id = ? AND verified_at IS NULL", messaging.PurposeMfaVerification, "session:"+sess.ID).
		Order("created_at DESC").Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return errCodeNotFound()
	}
	if err != nil {
		return fmt.Errorf("experience: session otp: %w", err)
	}
	settings, err := e.Settings.Get(ctx)
	if err != nil {
		return err
	}
	if err := mfaChannelEnabled(settings, row.IdentifierType); err != nil {
		return err
	}
	// Enrolment may have changed since the code was sent (a factor
	// removed): what counts is now.
	factors, err := e.Factors.List(ctx, user.ID)
	if err != nil {
		return err
	}
	if !codeFactorUsable(factors, user, row.IdentifierType, settings) {
		return errCodeFactorNotEnrolled(row.IdentifierType)
	}
	return e.guardFactor(ctx, user, "otp", func() error {
		return e.codes.Verify(ctx, row.ID, row.IdentifierType, row.Identifier, code)
	})
}
