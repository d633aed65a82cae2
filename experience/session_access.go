package experience

import (
	"context"

	"github.com/latch-dev/latch/credentials"
	"github.com/latch-dev/latch/fault"
)

// ReauthenticateSession checks that a session is live and active, that its
// user may still sign in, and extends it (silent authentication). For a
// calling application that enforces MFA (enforceMFA), a session opened
// without MFA (by an application that does not enforce it) of a user with
// factors answers mfa_required with that session, to be stepped up first.
//
// caller.OrgID is the organization context asked for (none: a plain one):
// it may differ from the session's, which switches the session's context
// once membership — and the organization's MFA, if it requires it — are
// checked again.
func (e *Engine) ReauthenticateSession(ctx context.Context, sessionID string, caller SessionMeta, enforceMFA bool) (*SignIn, error) {
	requested, err := e.requestedOrg(ctx, caller.OrgID)
	if err != nil {
		return nil, err
	}
	signIn, err := e.ActiveSession(ctx, sessionID)
	if err != nil {
		return nil, err
	}
	if ok, err := e.mayUse(ctx, signIn.Session, caller, true); err != nil || !ok {
		return nil, orSessionNotFound(err)
	}
	org, err := e.orgAccess(ctx, requested, signIn.User.ID)
	if err != nil {
		if fault.Is(err, CodeOrgMembershipRequired) {
			e.refuseOrg(ctx, signIn.User, caller, "session", requested.ID)
		}
		return nil, err
	}
	if org.requiresMFA() && !hasAMR(signIn.Session.AMR, AMRMFA) {
		return nil, e.orgStepUp(ctx, signIn.User, signIn.Session)
	}
	orgID := org.orgID()
	if enforceMFA && !hasAMR(signIn.Session.AMR, AMRMFA) {
		settings, err := e.Settings.Get(ctx)
		if err != nil {
			return nil, err
		}
		if settings.MFA.Enforce {
			factors, err := e.Factors.List(ctx, signIn.User.ID)
			if err != nil {
				return nil, err
			}
			if len(factors) > 0 {
				return nil, mfaRequired(signIn.User, signIn.Session, factorTypes(factors))
			}
		}
	}
	sess, err := e.Sessions.Touch(ctx, signIn.Session, orgID)
	if err != nil {
		return nil, err
	}
	return &SignIn{User: signIn.User, Session: sess, Org: org}, nil
}

// ActiveSession returns a live, active session and its user, who must still
// be allowed to sign in. It does not extend the session (refreshing tokens
// is not an authentication).
func (e *Engine) ActiveSession(ctx context.Context, sessionID string) (*SignIn, error) {
	sess, user, err := e.Sessions.getWithUser(ctx, sessionID)
	if err != nil {
		return nil, err
	}
	if sess.State != SessionActive {
		return nil, errSessionNotFound()
	}
	if user.Suspended {
		return nil, errSuspended
	}
	return &SignIn{User: user, Session: sess}, nil
}

// sessionFor returns a live session (pending or active) that the calling
// client may use: its own or, to re-authenticate (reauth), one of another
// SSO client when the caller is one too. Any other session is answered as
// if it did not exist: a session id is no bearer credential for strangers.
func (e *Engine) sessionFor(ctx context.Context, id string, caller SessionMeta, reauth bool) (*Session, error) {
	sess, err := e.Sessions.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if ok, err := e.mayUse(ctx, sess, caller, reauth); err != nil || !ok {
		return nil, orSessionNotFound(err)
	}
	return sess, nil
}

// mayUse applies the session ownership rule (see sessionFor).
func (e *Engine) mayUse(ctx context.Context, sess *Session, caller SessionMeta, reauth bool) (bool, error) {
	if sess.ClientID == caller.ClientID {
		return true, nil
	}
	if !reauth || !caller.SSO || e.opts.Clients == nil {
		return false, nil
	}
	return e.opts.Clients.SharesSessions(ctx, sess.ClientID)
}

func orSessionNotFound(err error) error {
	if err != nil {
		return err
	}
	return errSessionNotFound()
}

// EndSession logs out a session of the calling client; the caller revokes
// its tokens.
func (e *Engine) EndSession(ctx context.Context, sessionID string, caller SessionMeta) error {
	if _, err := e.sessionFor(ctx, sessionID, caller, false); err != nil {
		return err
	}
	ok, err := e.Sessions.Revoke(ctx, sessionID)
	if err == nil && ok {
		e.audit(ctx, AuditEvent{Event: EventSessionRevoked, Outcome: OutcomeSuccess, ClientID: caller.ClientID,
			Data: map[string]any{"session_id": sessionID, "reason": "logout"}})
	}
	return err
}

// SessionListing is one of a user's live sessions as a management caller
// may see it: the session without its id unless the caller could use it
// anyway (its own, or an SSO peer's); ListingID always identifies the entry
// without being usable as a session id.
type SessionListing struct {
	ListingID string `json:"listing_id"`
	Session
}

// ListUserSessions lists a user's live sessions for a management caller.
func (e *Engine) ListUserSessions(ctx context.Context, userID string, caller SessionMeta) ([]SessionListing, error) {
	if _, err := e.Users.Get(ctx, userID); err != nil {
		return nil, err
	}
	sessions, err := e.Sessions.ListUser(ctx, userID)
	if err != nil {
		return nil, err
	}
	usable := map[string]bool{}
	out := make([]SessionListing, 0, len(sessions))
	for _, s := range sessions {
		ok, seen := usable[s.ClientID]
		if !seen {
			if ok, err = e.mayUse(ctx, s, caller, true); err != nil {
				return nil, err
			}
			usable[s.ClientID] = ok
		}
		l := SessionListing{ListingID: "lsl_" + credentials.Digest(s.ID)[:24], Session: *s}
		if !ok {
			l.Session.ID = ""
		}
		out = append(out, l)
	}
	return out, nil
}

// RevokeSession ends a session; the caller revokes its tokens.
func (e *Engine) RevokeSession(ctx context.Context, sessionID, reason string) (bool, error) {
	ok, err := e.Sessions.Revoke(ctx, sessionID)
	if err == nil && ok {
		e.audit(ctx, AuditEvent{Event: EventSessionRevoked, Outcome: OutcomeSuccess, Data: map[string]any{"session_id": sessionID, "reason": reason}})
	}
	return ok, err
}

// RecordRefreshReuse logs a refresh-token reuse and ends the session.
func (e *Engine) RecordRefreshReuse(ctx context.Context, sessionID, userID, clientID string) error {
	e.audit(ctx, AuditEvent{Event: EventRefreshReuse, Outcome: OutcomeFailure, UserID: userID, ClientID: clientID,
		Data: map[string]any{"session_id": sessionID}})
	_, err := e.RevokeSession(ctx, sessionID, "refresh_token_reuse")
	return err
}

func hasAMR(list []string, m string) bool {
	for _, v := range list {
		if v == m {
			return true
		}
	}
	return false
}
