package experience

import "github.com/latch-dev/latch/experience/directory"

// The engine speaks of users in the directory's terms; these names keep
// the engine's surface (and its callers in app and cmd) in one vocabulary.
type (
	User       = directory.User
	Identifier = directory.Identifier
	Profile    = directory.Profile
	Normalizer = directory.Normalizer
	Users      = directory.Users
	UserFilter = directory.UserFilter

	Organization = directory.Organization
	OrgInput     = directory.OrgInput
	OrgRole      = directory.OrgRole
	RoleInput    = directory.RoleInput
	Member       = directory.Member
	UserOrg      = directory.UserOrg
	OrgFilter    = directory.OrgFilter
)

// Identifier types.
const (
	IdentifierUsername = directory.IdentifierUsername
	IdentifierEmail    = directory.IdentifierEmail
	IdentifierPhone    = directory.IdentifierPhone
)

// Directory error codes, as the engine's callers know them.
const (
	CodeUserNotFound        = directory.CodeUserNotFound
	CodeUsernameInUse       = directory.CodeUsernameInUse
	CodeEmailInUse          = directory.CodeEmailInUse
	CodePhoneInUse          = directory.CodePhoneInUse
	CodeUserIdentifierEmpty = directory.CodeUserIdentifierEmpty

	CodeOrgNotFound       = directory.CodeOrgNotFound
	CodeOrgNameInUse      = directory.CodeOrgNameInUse
	CodeOrgRoleNotFound   = directory.CodeOrgRoleNotFound
	CodeOrgRoleNameInUse  = directory.CodeOrgRoleNameInUse
	CodeOrgMemberExists   = directory.CodeOrgMemberExists
	CodeOrgMemberNotFound = directory.CodeOrgMemberNotFound
)

// NormalizeEmail validates an address and lower-cases it.
func NormalizeEmail(v string) (string, error) { return directory.NormalizeEmail(v) }

// NormalizePhone parses an international number and formats it as E.164.
func NormalizePhone(v string) (string, error) { return directory.NormalizePhone(v) }

func errUserNotFound() error { return directory.ErrUserNotFound() }
