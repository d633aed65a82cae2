package experience

import (
	"context"
	"net/http"

	"gorm.io/gorm"

	"github.com/latch-dev/latch/experience/directory"
	"github.com/latch-dev/latch/fault"
)

// Organizations in the engine: the management operations (each change and
// its audit row commit together) and the rules of signing in in an
// organization's context. The data lives in experience/directory.

// Error codes of sign-in in an organization's context.
const (
	// CodeSignInOrgNotFound: a sign-in named an organization that does not
	// exist. It is checked before any credential and reveals nothing about
	// the user (the /v1 dialect answers 400 org_not_found).
	CodeSignInOrgNotFound = "session.organization_not_found"
	// CodeOrgMembershipRequired: a correct credential, but the user is not
	// a member of the organization the sign-in names.
	CodeOrgMembershipRequired = "organization.membership_required"
)

// Audit events of organizations.
const (
	EventOrgCreated        = "organization.created"
	EventOrgUpdated        = "organization.updated"
	EventOrgDeleted        = "organization.deleted"
	EventOrgRoleCreated    = "organization_role.created"
	EventOrgRoleUpdated    = "organization_role.updated"
	EventOrgRoleDeleted    = "organization_role.deleted"
	EventOrgMemberAdded    = "organization.member_added"
	EventOrgMemberRolesSet = "organization.member_roles_updated"
	EventOrgMemberRemoved  = "organization.member_removed"
	EventOrgContextEnded   = "session.org_context_ended"
)

func errSignInOrgNotFound() *fault.Error {
	return fault.New(CodeSignInOrgNotFound, http.StatusBadRequest, "The organization does not exist.")
}

func errMembershipRequired() *fault.Error {
	return fault.New(CodeOrgMembershipRequired, http.StatusForbidden, "The user is not a member of the organization.")
}

// IsOrgRefusal reports whether err refuses an organization context (the
// organization is gone, the user is no longer a member, or it requires an
// MFA the session never had), as opposed to the session itself ending.
func IsOrgRefusal(err error) bool {
	fe, ok := fault.As(err)
	return ok && (fe.Code == CodeOrgMembershipRequired || fe.Code == CodeSignInOrgNotFound || fe.Code == CodeMFARequired)
}

// OrgContext is the organization a sign-in happened in and what the user
// holds in it: role names and the union of their permissions, read when
// the sign-in (or refresh) happens, so tokens carry the current roles.
type OrgContext struct {
	ID          string
	Name        string
	Roles       []string
	Permissions []string
	MFARequired bool
}

// requestedOrg looks up the organization a sign-in names ("" names none).
// It runs before any credential is checked: an unknown organization tells
// nothing about the user.
func (e *Engine) requestedOrg(ctx context.Context, orgID string) (*directory.Organization, error) {
	if orgID == "" {
		return nil, nil
	}
	org, err := e.Orgs.Head(ctx, orgID)
	if err != nil {
		return nil, err
	}
	if org == nil {
		return nil, errSignInOrgNotFound()
	}
	return org, nil
}

// orgAccess returns the user's context in org (nil for none), or
// org_membership_required when they are not a member.
func (e *Engine) orgAccess(ctx context.Context, org *directory.Organization, userID string) (*OrgContext, error) {
	if org == nil {
		return nil, nil
	}
	return e.orgContextTx(e.db.WithContext(ctx), org, userID)
}

// orgContextTx is orgAccess through tx (see Memberships.AccessTx).
func (e *Engine) orgContextTx(tx *gorm.DB, org *directory.Organization, userID string) (*OrgContext, error) {
	access, err := e.Members.AccessTx(tx, org.ID, userID)
	if err != nil {
		return nil, err
	}
	if access == nil {
		return nil, errMembershipRequired()
	}
	return &OrgContext{ID: org.ID, Name: org.Name, Roles: access.Roles, Permissions: access.Permissions, MFARequired: org.MFARequired}, nil
}

// OrgMemberContext returns the user's current context in an organization,
// or nil when the organization is gone or the user is not a member (for
// userinfo, which reports what holds now).
func (e *Engine) OrgMemberContext(ctx context.Context, orgID, userID string) (*OrgContext, error) {
	org, err := e.Orgs.Head(ctx, orgID)
	if err != nil || org == nil {
		return nil, err
	}
	oc, err := e.orgAccess(ctx, org, userID)
	if fault.Is(err, CodeOrgMembershipRequired) {
		return nil, nil
	}
	return oc, err
}

// orgAsk is the organization context a first-factor sign-in asks for: the
// organization it names (looked up before the credential), or, for an
// e-mail sign-in that names none, discovery by the address's domain.
type orgAsk struct {
	org      *directory.Organization
	discover bool
}

// resolve decides the context once the credential proved who the user is:
// a named organization requires membership; discovery finds the one
// organization listing the e-mail's domain, if the user is its member, and
// otherwise the sign-in is a plain one.
func (a orgAsk) resolve(ctx context.Context, e *Engine, user *User) (*OrgContext, error) {
	if a.org != nil {
		return e.orgAccess(ctx, a.org, user.ID)
	}
	if !a.discover || user.PrimaryEmail == nil {
		return nil, nil
	}
	ids, err := e.Orgs.DiscoverByDomain(ctx, directory.EmailDomain(*user.PrimaryEmail))
	if err != nil || len(ids) != 1 {
		return nil, err
	}
	org, err := e.Orgs.Head(ctx, ids[0])
	if err != nil || org == nil {
		return nil, err
	}
	oc, err := e.orgAccess(ctx, org, user.ID)
	if fault.Is(err, CodeOrgMembershipRequired) {
		return nil, nil
	}
	return oc, err
}

// orgID is the id of a context ("" for none).
func (c *OrgContext) orgID() string {
	if c == nil {
		return ""
	}
	return c.ID
}

// requiresMFA reports whether the context requires MFA.
func (c *OrgContext) requiresMFA() bool { return c != nil && c.MFARequired }

// refuseOrg audits a sign-in refused for its organization context.
func (e *Engine) refuseOrg(ctx context.Context, user *User, meta SessionMeta, method, orgID string) {
	e.audit(ctx, AuditEvent{Event: EventSignIn, Outcome: OutcomeFailure, UserID: user.ID, ClientID: meta.ClientID, IPAddress: meta.IPAddress,
		Data: map[string]any{"method": method, "reason": "org_membership_required", "organization_id": orgID}})
}

// orgStepUp answers a session that must prove MFA for an organization that
// requires it: mfa_required with the factors the user can use now, or
// mfa_enrollment_required when there is none (a one-time code to a
// verified address counts only under the Mandatory policy, as it does for
// users without factors everywhere else).
func (e *Engine) orgStepUp(ctx context.Context, user *User, sess *Session) error {
	factors, err := e.Factors.List(ctx, user.ID)
	if err != nil {
		return err
	}
	offered := factorTypes(factors)
	if len(factors) == 0 {
		settings, err := e.Settings.Get(ctx)
		if err != nil {
			return err
		}
		if settings.MFA.Policy == PolicyMandatory {
			offered = e.codeChannels(user, settings)
		}
		if len(offered) == 0 {
			return errOrgMissingMFA()
		}
	}
	return mfaRequired(user, sess, offered)
}

func errOrgMissingMFA() *fault.Error {
	return fault.New(CodeMissingMFA, http.StatusForbidden,
		"The organization requires multi-factor authentication and the user has no factor to use; enrol one first.")
}

// RefreshSignIn is the sign-in behind a refresh: the live active session
// and, in an organization context (orgID), what the user holds there now —
// so a changed role shows in the next token, and a removed member gets
// none. keep says orgID is the context the refresh token was issued in:
// when the user may no longer act in it, the session's organization context
// ends as well (an organization token asked for on refresh ends nothing).
func (e *Engine) RefreshSignIn(ctx context.Context, sessionID, orgID string, keep bool) (*SignIn, error) {
	signIn, err := e.ActiveSession(ctx, sessionID)
	if err != nil || orgID == "" {
		return signIn, err
	}
	org, err := e.Orgs.Head(ctx, orgID)
	if err != nil {
		return nil, err
	}
	var oc *OrgContext
	refusal := error(errSignInOrgNotFound())
	if org != nil {
		oc, refusal = e.orgAccess(ctx, org, signIn.User.ID)
		if refusal == nil && oc.MFARequired && !hasAMR(signIn.Session.AMR, AMRMFA) {
			refusal = fault.New(CodeMFARequired, http.StatusForbidden, "The organization requires multi-factor authentication, which this session has not completed.")
		}
	}
	if refusal != nil {
		if _, ok := fault.As(refusal); !ok {
			return nil, refusal
		}
		if keep {
			if err := e.endOrgContext(ctx, signIn.Session, orgID); err != nil {
				return nil, err
			}
		}
		return nil, refusal
	}
	signIn.Org = oc
	return signIn, nil
}

// endOrgContext ends a session's organization context (if it is still
// orgID): later silent authentication without org_id, or in another
// organization, is unaffected; one in orgID is checked afresh.
func (e *Engine) endOrgContext(ctx context.Context, sess *Session, orgID string) error {
	res := e.db.WithContext(ctx).Model(&sessionRow{}).Where("id = ? AND org_id = ?", sess.ID, orgID).
		Updates(map[string]any{"org_id": "", "updated_at": e.now()})
	if res.Error != nil {
		return res.Error
	}
	if res.RowsAffected > 0 {
		e.audit(ctx, AuditEvent{Event: EventOrgContextEnded, Outcome: OutcomeSuccess, UserID: sess.UserID, ClientID: sess.ClientID,
			Data: map[string]any{"session_id": sess.ID, "organization_id": orgID, "reason": "refresh_refused"}})
	}
	return nil
}

// orgMFASettings applies Logto's organization MFA rule to the Experience
// API: with mfa.organization_required_mfa_policy Mandatory, a member of an
// organization that requires MFA is under the Mandatory policy (and MFA is
// enforced) whatever the tenant-wide policy says.
func (e *Engine) orgMFASettings(ctx context.Context, user *User, settings Settings) (Settings, error) {
	if settings.MFA.OrganizationRequiredPolicy != PolicyMandatory {
		return settings, nil
	}
	required, err := e.Members.InMFARequiredOrg(ctx, user.ID)
	if err != nil || !required {
		return settings, err
	}
	settings.MFA.Policy, settings.MFA.Enforce = PolicyMandatory, true
	return settings, nil
}

// provisionJIT gives a user just-in-time memberships for their e-mail
// address, inside tx: only a verified address counts, never an unverified
// one (anyone can type any address).
func (e *Engine) provisionJIT(tx *gorm.DB, user *User, meta SessionMeta, via string) error {
	if user.PrimaryEmail == nil || !user.EmailVerified {
		return nil
	}
	grants, err := e.Members.ProvisionJITTx(tx, user.ID, directory.EmailDomain(*user.PrimaryEmail))
	if err != nil {
		return err
	}
	for _, g := range grants {
		if err := e.Audit.record(tx, AuditEvent{Event: EventOrgMemberAdded, Outcome: OutcomeSuccess, UserID: user.ID, ClientID: meta.ClientID,
			IPAddress: meta.IPAddress, Data: map[string]any{"organization_id": g.OrgID, "roles": g.Roles, "via": "jit", "source": via}}); err != nil {
			return err
		}
	}
	return nil
}

// connectorJIT applies an SSO connector's JIT organizations (the engine's
// Memberships hook) with the directory's memberships: the user joins each
// organization that exists, with its jit_roles, audited like the e-mail
// domain's just-in-time membership.
type connectorJIT struct{ e *Engine }

func (j connectorJIT) JoinTx(ctx context.Context, tx *gorm.DB, orgID, userID string) error {
	g, err := j.e.Members.JoinTx(tx, orgID, userID)
	if err != nil || g == nil {
		return err
	}
	return j.e.Audit.record(tx, AuditEvent{Event: EventOrgMemberAdded, Outcome: OutcomeSuccess, UserID: userID,
		Data: map[string]any{"organization_id": g.OrgID, "roles": g.Roles, "via": "jit", "source": "sso_connector"}})
}

// Management: every change commits with its audit row.

// orgWrite runs a change and its audit row in one transaction.
func (e *Engine) orgWrite(ctx context.Context, fn func(tx *gorm.DB) (AuditEvent, error)) error {
	return e.db.Tx(ctx, func(tx *gorm.DB) error {
		ev, err := fn(tx)
		if err != nil {
			return err
		}
		ev.Outcome = OutcomeSuccess
		return e.Audit.record(tx, ev)
	})
}

// CreateOrganization creates an organization.
func (e *Engine) CreateOrganization(ctx context.Context, in OrgInput, meta SessionMeta) (*Organization, error) {
	var out *Organization
	err := e.orgWrite(ctx, func(tx *gorm.DB) (AuditEvent, error) {
		var err error
		if out, err = e.Orgs.CreateTx(tx, in); err != nil {
			return AuditEvent{}, err
		}
		return AuditEvent{Event: EventOrgCreated, ClientID: meta.ClientID,
			Data: map[string]any{"organization_id": out.ID, "name": out.Name, "mfa_required": out.MFARequired}}, nil
	})
	return out, err
}

// UpdateOrganization changes an organization.
func (e *Engine) UpdateOrganization(ctx context.Context, id string, in OrgInput, meta SessionMeta) (*Organization, error) {
	var out *Organization
	err := e.orgWrite(ctx, func(tx *gorm.DB) (AuditEvent, error) {
		var err error
		if out, err = e.Orgs.UpdateTx(tx, id, in); err != nil {
			return AuditEvent{}, err
		}
		return AuditEvent{Event: EventOrgUpdated, ClientID: meta.ClientID,
			Data: map[string]any{"organization_id": id, "fields": in.Fields()}}, nil
	})
	return out, err
}

// DeleteOrganization deletes an organization and its memberships. Sessions
// in its context keep their session but lose the context at their next
// refresh or re-authentication in it.
func (e *Engine) DeleteOrganization(ctx context.Context, id string, meta SessionMeta) error {
	return e.orgWrite(ctx, func(tx *gorm.DB) (AuditEvent, error) {
		org, err := e.Orgs.DeleteTx(tx, id)
		if err != nil {
			return AuditEvent{}, err
		}
		return AuditEvent{Event: EventOrgDeleted, ClientID: meta.ClientID,
			Data: map[string]any{"organization_id": id, "name": org.Name}}, nil
	})
}

// CreateOrgRole creates an organization role.
func (e *Engine) CreateOrgRole(ctx context.Context, in RoleInput, meta SessionMeta) (*OrgRole, error) {
	var out *OrgRole
	err := e.orgWrite(ctx, func(tx *gorm.DB) (AuditEvent, error) {
		var err error
		if out, err = e.OrgRoles.CreateTx(tx, in); err != nil {
			return AuditEvent{}, err
		}
		return AuditEvent{Event: EventOrgRoleCreated, ClientID: meta.ClientID,
			Data: map[string]any{"role_id": out.ID, "name": out.Name, "permissions": out.Permissions}}, nil
	})
	return out, err
}

// UpdateOrgRole changes an organization role.
func (e *Engine) UpdateOrgRole(ctx context.Context, id string, in RoleInput, meta SessionMeta) (*OrgRole, error) {
	var out *OrgRole
	err := e.orgWrite(ctx, func(tx *gorm.DB) (AuditEvent, error) {
		var err error
		if out, err = e.OrgRoles.UpdateTx(tx, id, in); err != nil {
			return AuditEvent{}, err
		}
		return AuditEvent{Event: EventOrgRoleUpdated, ClientID: meta.ClientID,
			Data: map[string]any{"role_id": id, "name": out.Name, "fields": in.Fields()}}, nil
	})
	return out, err
}

// DeleteOrgRole deletes an organization role, in use or not; memberships
// lose it.
func (e *Engine) DeleteOrgRole(ctx context.Context, id string, meta SessionMeta) error {
	return e.orgWrite(ctx, func(tx *gorm.DB) (AuditEvent, error) {
		role, err := e.OrgRoles.DeleteTx(tx, id)
		if err != nil {
			return AuditEvent{}, err
		}
		return AuditEvent{Event: EventOrgRoleDeleted, ClientID: meta.ClientID,
			Data: map[string]any{"role_id": id, "name": role.Name}}, nil
	})
}

// AddOrgMember makes a user a member with roles (names).
func (e *Engine) AddOrgMember(ctx context.Context, orgID, userID string, roles []string, meta SessionMeta) (*Member, error) {
	var out *Member
	err := e.orgWrite(ctx, func(tx *gorm.DB) (AuditEvent, error) {
		var err error
		if out, err = e.Members.AddTx(tx, orgID, userID, roles); err != nil {
			return AuditEvent{}, err
		}
		return AuditEvent{Event: EventOrgMemberAdded, UserID: userID, ClientID: meta.ClientID,
			Data: map[string]any{"organization_id": orgID, "roles": out.Roles, "via": "management_api"}}, nil
	})
	return out, err
}

// SetOrgMemberRoles replaces a member's roles.
func (e *Engine) SetOrgMemberRoles(ctx context.Context, orgID, userID string, roles []string, meta SessionMeta) (*Member, error) {
	var out *Member
	err := e.orgWrite(ctx, func(tx *gorm.DB) (AuditEvent, error) {
		var err error
		if out, err = e.Members.SetRolesTx(tx, orgID, userID, roles); err != nil {
			return AuditEvent{}, err
		}
		return AuditEvent{Event: EventOrgMemberRolesSet, UserID: userID, ClientID: meta.ClientID,
			Data: map[string]any{"organization_id": orgID, "roles": out.Roles}}, nil
	})
	return out, err
}

// RemoveOrgMember ends a membership. The user's sessions in the
// organization's context lose it at their next refresh (invalid_grant) or
// re-authentication in it (org_membership_required).
func (e *Engine) RemoveOrgMember(ctx context.Context, orgID, userID string, meta SessionMeta) error {
	return e.orgWrite(ctx, func(tx *gorm.DB) (AuditEvent, error) {
		if err := e.Members.RemoveTx(tx, orgID, userID); err != nil {
			return AuditEvent{}, err
		}
		return AuditEvent{Event: EventOrgMemberRemoved, UserID: userID, ClientID: meta.ClientID,
			Data: map[string]any{"organization_id": orgID}}, nil
	})
}
