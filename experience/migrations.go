package experience

import (
	"github.com/latch-dev/latch/experience/directory"
	"github.com/latch-dev/latch/store"
)

// Migrations are the experience package's schema steps, in order.
func Migrations() []store.Migration {
	return []store.Migration{
		{ID: "experience/0001_users", SQL: `
CREATE TABLE users (
	id TEXT PRIMARY KEY,
	username TEXT,
	username_key TEXT UNIQUE,
	primary_email TEXT UNIQUE,
	primary_phone TEXT UNIQUE,
	email_verified BOOLEAN NOT NULL DEFAULT FALSE,
	phone_verified BOOLEAN NOT NULL DEFAULT FALSE,
	name TEXT NOT NULL DEFAULT '',
	custom_data TEXT NOT NULL DEFAULT '{}',
	password_hash TEXT,
	password_updated_at TIMESTAMP,
	password_expired BOOLEAN NOT NULL DEFAULT FALSE,
	password_temporary BOOLEAN NOT NULL DEFAULT FALSE,
	suspended BOOLEAN NOT NULL DEFAULT FALSE,
	created_at TIMESTAMP NOT NULL,
	updated_at TIMESTAMP NOT NULL,
	last_sign_in_at TIMESTAMP
);
CREATE TABLE password_history (
	id TEXT PRIMARY KEY,
	user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	password_hash TEXT NOT NULL,
	created_at TIMESTAMP NOT NULL
);
CREATE INDEX password_history_user ON password_history (user_id, created_at);
CREATE TABLE mfa_factors (
	id TEXT PRIMARY KEY,
	user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	type TEXT NOT NULL,
	secret BLOB,
	data TEXT NOT NULL DEFAULT '{}',
	created_at TIMESTAMP NOT NULL,
	last_used_at TIMESTAMP
);
CREATE INDEX mfa_factors_user ON mfa_factors (user_id);
`},
		{ID: "experience/0002_sentinel", SQL: `
CREATE TABLE sentinel_counters (
	key TEXT PRIMARY KEY,
	failures INTEGER NOT NULL,
	window_start TIMESTAMP NOT NULL,
	locked_until TIMESTAMP,
	updated_at TIMESTAMP NOT NULL
);
`},
		{ID: "experience/0003_sessions", SQL: `
CREATE TABLE sessions (
	id TEXT PRIMARY KEY,
	user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	client_id TEXT NOT NULL,
	org_id TEXT NOT NULL DEFAULT '',
	state TEXT NOT NULL,
	amr TEXT NOT NULL DEFAULT '',
	auth_time TIMESTAMP NOT NULL,
	created_at TIMESTAMP NOT NULL,
	updated_at TIMESTAMP NOT NULL,
	expires_at TIMESTAMP NOT NULL,
	revoked_at TIMESTAMP,
	ip_address TEXT NOT NULL DEFAULT '',
	user_agent TEXT NOT NULL DEFAULT ''
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE TABLE reset_tokens (
	digest TEXT PRIMARY KEY,
	user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	client_id TEXT NOT NULL,
	session_id TEXT NOT NULL DEFAULT '',
	reason TEXT NOT NULL,
	expires_at TIMESTAMP NOT NULL,
	used_at TIMESTAMP
);
`},
		{ID: "experience/0004_settings_audit", SQL: `
CREATE TABLE settings (
	id TEXT PRIMARY KEY,
	data TEXT NOT NULL,
	updated_at TIMESTAMP NOT NULL
);
CREATE TABLE audit_events (
	id TEXT PRIMARY KEY,
	created_at TIMESTAMP NOT NULL,
	event TEXT NOT NULL,
	outcome TEXT NOT NULL,
	user_id TEXT NOT NULL DEFAULT '',
	client_id TEXT NOT NULL DEFAULT '',
	ip_address TEXT NOT NULL DEFAULT '',
	data TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_events_time ON audit_events (created_at);
CREATE INDEX audit_events_user ON audit_events (user_id, created_at);
`},
		{ID: "experience/0005_codes_interactions", SQL: `
CREATE TABLE verification_codes (
	id TEXT PRIMARY KEY,
	purpose TEXT NOT NULL,
	identifier_type TEXT NOT NULL,
	identifier TEXT NOT NULL,
	code_digest TEXT NOT NULL,
	attempts INTEGER NOT NULL DEFAULT 0,
	max_attempts INTEGER NOT NULL,
	client_id TEXT NOT NULL DEFAULT '',
	created_at TIMESTAMP NOT NULL,
	expires_at TIMESTAMP NOT NULL,
	verified_at TIMESTAMP
);
CREATE INDEX verification_codes_identifier ON verification_codes (identifier_type, identifier, purpose, created_at);
CREATE TABLE interactions (
	id TEXT PRIMARY KEY,
	client_id TEXT NOT NULL,
	event TEXT NOT NULL,
	data TEXT NOT NULL,
	version INTEGER NOT NULL,
	created_at TIMESTAMP NOT NULL,
	updated_at TIMESTAMP NOT NULL,
	expires_at TIMESTAMP NOT NULL
);
CREATE INDEX interactions_expires_at ON interactions (expires_at);
`},
		{ID: "experience/0006_mfa", SQL: `
ALTER TABLE mfa_factors ADD COLUMN last_used_step BIGINT;
ALTER TABLE mfa_factors ADD COLUMN credential_id TEXT;
CREATE UNIQUE INDEX mfa_factors_credential ON mfa_factors (credential_id);
ALTER TABLE users ADD COLUMN mfa_skipped BOOLEAN NOT NULL DEFAULT FALSE;
CREATE TABLE backup_codes (
	user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	factor_id TEXT NOT NULL REFERENCES mfa_factors (id) ON DELETE CASCADE,
	digest TEXT NOT NULL,
	used_at TIMESTAMP,
	PRIMARY KEY (user_id, digest)
);
CREATE INDEX backup_codes_factor ON backup_codes (factor_id);
`},
		// One TOTP authenticator per user, enforced by the database: the
		// check in BindMFA alone let concurrent binds add several.
		{ID: "experience/0007_mfa_one_totp", SQL: `
CREATE UNIQUE INDEX mfa_factors_one_totp ON mfa_factors (user_id) WHERE type = 'totp';
`},
		{ID: "experience/0008_mfa_one_backup_set", SQL: `
CREATE UNIQUE INDEX mfa_factors_one_backup_set ON mfa_factors (user_id) WHERE type = 'backup_code';
`},
		// A repeated event (an attempt refused by a lock) is one row whose
		// count goes up, so a flood cannot grow the table.
		{ID: "experience/0009_audit_repeats", SQL: `
ALTER TABLE audit_events ADD COLUMN occurrences INTEGER NOT NULL DEFAULT 1;
ALTER TABLE audit_events ADD COLUMN last_at TIMESTAMP;
`},
		// Usernames follow RFC 8265 (PRECIS); each has a look-alike
		// skeleton (Unicode TR39), unique, so a new username cannot pass
		// for an existing one. The data step re-derives old keys and
		// fills the skeletons.
		{ID: "experience/0010_username_skeleton", SQL: `
ALTER TABLE users ADD COLUMN username_skeleton TEXT;
CREATE UNIQUE INDEX users_username_skeleton ON users (username_skeleton);
`, Run: directory.BackfillUsernames},
		// The sentinel counts reservations in flight apart from evaluated
		// failures, in two time buckets (pending_bucket is the current
		// one's start in Unix milliseconds, pending_prev the count of the
		// one before), so a reservation never settled stops counting.
		// failures now counts evaluated failures only; a row written before
		// may still count reservations in it, which errs on the safe side
		// and ends with its window.
		{ID: "experience/0011_sentinel_reservations", SQL: `
ALTER TABLE sentinel_counters ADD COLUMN pending INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sentinel_counters ADD COLUMN pending_prev INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sentinel_counters ADD COLUMN pending_bucket BIGINT NOT NULL DEFAULT 0;
`},
		// Verification records became one type per kind, each storing its
		// own state; interactions in the old shape (an hour at most) are
		// dropped rather than translated.
		{ID: "experience/0012_interaction_record_kinds", SQL: `
DELETE FROM interactions;
`},
		// The management listings page through users oldest first and
		// through audit events by client: keyset pages read an index range,
		// so a page costs the same with a thousand rows or millions.
		{ID: "experience/0013_listing_indexes", SQL: `
CREATE INDEX users_created ON users (created_at, id);
CREATE INDEX audit_events_client ON audit_events (client_id, created_at);
`},
		// Sending a code and issuing a reset token first delete the
		// long-expired ones: without these indexes each of them read the
		// whole table, whose size grows with the user base.
		{ID: "experience/0014_expiry_indexes", SQL: `
CREATE INDEX verification_codes_expires_at ON verification_codes (expires_at);
CREATE INDEX reset_tokens_expires_at ON reset_tokens (expires_at);
`},
		// Upstream identity providers (social and enterprise SSO
		// connectors): the configuration without its secret, the secret
		// sealed apart; an SSO domain belongs to one connector (the primary
		// key); an upstream identity to one account.
		{ID: "experience/0015_connectors", SQL: `
CREATE TABLE connectors (
	id TEXT PRIMARY KEY,
	family TEXT NOT NULL,
	name TEXT NOT NULL,
	provider TEXT NOT NULL,
	config TEXT NOT NULL,
	secret BLOB,
	trust_unverified_email BOOLEAN NOT NULL DEFAULT FALSE,
	jit_organizations TEXT NOT NULL DEFAULT '[]',
	created_at TIMESTAMP NOT NULL,
	updated_at TIMESTAMP NOT NULL
);
CREATE TABLE connector_domains (
	domain TEXT PRIMARY KEY,
	connector_id TEXT NOT NULL REFERENCES connectors (id) ON DELETE CASCADE
);
CREATE INDEX connector_domains_connector ON connector_domains (connector_id);
CREATE TABLE user_identities (
	connector_id TEXT NOT NULL REFERENCES connectors (id) ON DELETE CASCADE,
	subject TEXT NOT NULL,
	user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	email TEXT NOT NULL DEFAULT '',
	created_at TIMESTAMP NOT NULL,
	last_used_at TIMESTAMP NOT NULL,
	PRIMARY KEY (connector_id, subject)
);
CREATE INDEX user_identities_user ON user_identities (user_id);
`},
		// Organizations (B2B), their e-mail domains (discovery and
		// just-in-time membership), the tenant-wide organization roles and
		// memberships with their roles. Every link cascades: deleting an
		// organization deletes its memberships, deleting a user theirs,
		// deleting a membership its roles, deleting a role its grants.
		// organization_members is keyed (organization, user), which decides
		// concurrent adds of one user; its user_id index serves a user's
		// organizations and the domain index sign-in discovery; the
		// created_at indexes serve the listings' keyset pages.
		{ID: "experience/0016_organizations", SQL: `
CREATE TABLE organizations (
	id TEXT PRIMARY KEY,
	name TEXT NOT NULL UNIQUE,
	description TEXT NOT NULL DEFAULT '',
	custom_data TEXT NOT NULL DEFAULT '{}',
	mfa_required BOOLEAN NOT NULL DEFAULT FALSE,
	created_at TIMESTAMP NOT NULL,
	updated_at TIMESTAMP NOT NULL
);
CREATE TABLE organization_domains (
	organization_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
	purpose TEXT NOT NULL,
	domain TEXT NOT NULL,
	PRIMARY KEY (organization_id, purpose, domain)
);
CREATE INDEX organization_domains_domain ON organization_domains (domain, purpose);
CREATE TABLE organization_roles (
	id TEXT PRIMARY KEY,
	name TEXT NOT NULL UNIQUE,
	description TEXT NOT NULL DEFAULT '',
	permissions TEXT NOT NULL DEFAULT '[]',
	created_at TIMESTAMP NOT NULL,
	updated_at TIMESTAMP NOT NULL
);
CREATE TABLE organization_jit_roles (
	organization_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
	role_id TEXT NOT NULL REFERENCES organization_roles (id) ON DELETE CASCADE,
	PRIMARY KEY (organization_id, role_id)
);
CREATE INDEX organization_jit_roles_role ON organization_jit_roles (role_id);
CREATE TABLE organization_members (
	organization_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
	user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	created_at TIMESTAMP NOT NULL,
	PRIMARY KEY (organization_id, user_id)
);
CREATE INDEX organization_members_user ON organization_members (user_id);
CREATE TABLE organization_member_roles (
	organization_id TEXT NOT NULL,
	user_id TEXT NOT NULL,
	role_id TEXT NOT NULL REFERENCES organization_roles (id) ON DELETE CASCADE,
	PRIMARY KEY (organization_id, user_id, role_id),
	FOREIGN KEY (organization_id, user_id) REFERENCES organization_members (organization_id, user_id) ON DELETE CASCADE
);
CREATE INDEX organization_member_roles_role ON organization_member_roles (role_id);
CREATE INDEX organizations_created ON organizations (created_at, id);
CREATE INDEX organization_roles_created ON organization_roles (created_at, id);
CREATE INDEX organization_members_created ON organization_members (organization_id, created_at, user_id);
`},
		// SAML: an assertion id is accepted once per connector (the primary
		// key decides, on every replica) until it could no longer verify;
		// an SSO connector may vouch for the upstream's MFA.
		{ID: "experience/0017_saml_assertions", SQL: `
ALTER TABLE connectors ADD COLUMN trust_upstream_mfa BOOLEAN NOT NULL DEFAULT FALSE;
CREATE TABLE consumed_assertions (
	connector_id TEXT NOT NULL REFERENCES connectors (id) ON DELETE CASCADE,
	assertion_id TEXT NOT NULL,
	expires_at TIMESTAMP NOT NULL,
	PRIMARY KEY (connector_id, assertion_id)
);
CREATE INDEX consumed_assertions_expiry ON consumed_assertions (expires_at);
`},
		// Housekeeping purges dead sessions and sentinel counters in
		// batches: these indexes serve its range reads, so a round costs
		// the dead rows, not the table. Revoked sessions are few: a
		// partial index keeps the live ones out of it.
		{ID: "experience/0018_purge_indexes", SQL: `
CREATE INDEX sessions_expires_at ON sessions (expires_at);
CREATE INDEX sessions_revoked_at ON sessions (revoked_at) WHERE revoked_at IS NOT NULL;
CREATE INDEX sentinel_counters_updated_at ON sentinel_counters (updated_at);
`},
	}
}
