package token

import "github.com/latch-dev/latch/store"

// Migrations are the token package's schema steps, in order.
func Migrations() []store.Migration {
	return []store.Migration{
		{ID: "token/0001_signing_keys", SQL: `
CREATE TABLE signing_keys (
	kid TEXT PRIMARY KEY,
	alg TEXT NOT NULL,
	state TEXT NOT NULL,
	private_key BLOB NOT NULL,
	public_jwk TEXT NOT NULL,
	created_at TIMESTAMP NOT NULL,
	activated_at TIMESTAMP,
	retired_at TIMESTAMP
);
CREATE INDEX signing_keys_state ON signing_keys (state);
`},
		{ID: "token/0002_oauth_clients", SQL: `
CREATE TABLE oauth_clients (
	id TEXT PRIMARY KEY,
	name TEXT NOT NULL,
	secret_digest TEXT NOT NULL,
	scopes TEXT NOT NULL,
	grant_types TEXT NOT NULL,
	resources TEXT NOT NULL,
	created_at TIMESTAMP NOT NULL,
	updated_at TIMESTAMP NOT NULL,
	secret_rotated_at TIMESTAMP NOT NULL
);
`},
		{ID: "token/0003_revoked_tokens", SQL: `
CREATE TABLE revoked_tokens (
	jti TEXT PRIMARY KEY,
	expires_at TIMESTAMP NOT NULL
);
CREATE INDEX revoked_tokens_expires_at ON revoked_tokens (expires_at);
`},
		// Refresh tokens are opaque, so the database is their only record.
		// A family is one grant — client, user, session, audience, scope,
		// organisation, its absolute lifetime (expires_at: the session's
		// expiry when it started) and its revocation — and every rotation
		// adds a token to it. Only a token's SHA-256 digest is stored (a
		// leaked table yields no usable token); used_at stays NULL until the
		// token is rotated, which is what the single-winner conditional
		// UPDATE tests. A token is valid while it is unused, unexpired and
		// its family unrevoked, so revoking a family, a session's (logout)
		// or a user's (sign out everywhere) families updates one row per
		// grant, however many rotations it had. expires_at indexes serve the
		// purge of dead rows.
		{ID: "token/0004_refresh_tokens", SQL: `
CREATE TABLE refresh_families (
	id TEXT PRIMARY KEY,
	client_id TEXT NOT NULL,
	user_id TEXT NOT NULL,
	session_id TEXT NOT NULL,
	audience TEXT NOT NULL,
	scope TEXT NOT NULL,
	org_id TEXT NOT NULL,
	created_at TIMESTAMP NOT NULL,
	expires_at TIMESTAMP NOT NULL,
	rotated_at TIMESTAMP,
	rotations INTEGER NOT NULL DEFAULT 0,
	revoked_at TIMESTAMP
);
CREATE INDEX refresh_families_session_id ON refresh_families (session_id);
CREATE INDEX refresh_families_user_id ON refresh_families (user_id);
CREATE INDEX refresh_families_expires_at ON refresh_families (expires_at);
CREATE TABLE refresh_tokens (
	id TEXT PRIMARY KEY,
	digest TEXT NOT NULL UNIQUE,
	family_id TEXT NOT NULL REFERENCES refresh_families (id) ON DELETE CASCADE,
	created_at TIMESTAMP NOT NULL,
	expires_at TIMESTAMP NOT NULL,
	used_at TIMESTAMP
);
CREATE INDEX refresh_tokens_family_id ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_expires_at ON refresh_tokens (expires_at);
`},
		{ID: "token/0005_client_enforce_mfa", SQL: `
ALTER TABLE oauth_clients ADD COLUMN enforce_mfa BOOLEAN NOT NULL DEFAULT TRUE;
`},
		{ID: "token/0006_family_id_claims", SQL: `
ALTER TABLE refresh_families ADD COLUMN id_claims TEXT NOT NULL DEFAULT '';
`},
		// Set by a secret rotation that revokes the client's tokens: those
		// issued no later than this second are refused.
		{ID: "token/0007_client_tokens_valid_after", SQL: `
ALTER TABLE oauth_clients ADD COLUMN tokens_valid_after TIMESTAMP;
`},
		{ID: "token/0008_client_sso", SQL: `
ALTER TABLE oauth_clients ADD COLUMN sso BOOLEAN NOT NULL DEFAULT FALSE;
`},
		{ID: "token/0009_client_allowed_origins", SQL: `
ALTER TABLE oauth_clients ADD COLUMN allowed_origins TEXT NOT NULL DEFAULT '';
`},
		{ID: "token/0010_client_redirect_uris", SQL: `
ALTER TABLE oauth_clients ADD COLUMN redirect_uris TEXT NOT NULL DEFAULT '';
`},
		// OpenID Connect authorization code flow: client types and redirect
		// URIs; authorization requests (one per GET /oidc/auth, linked to the
		// interaction that signs the person in); single-use codes, stored
		// as digests and remembering what their first use issued (so a
		// replay can revoke it); browser sessions (the HttpOnly cookie's
		// digest → the Latch session it stands for); remembered consent.
		{ID: "token/0011_oidc_authorization_code", SQL: `
ALTER TABLE oauth_clients ADD COLUMN client_type TEXT NOT NULL DEFAULT 'backend';
ALTER TABLE oauth_clients ADD COLUMN post_logout_redirect_uris TEXT NOT NULL DEFAULT '';
ALTER TABLE oauth_clients ADD COLUMN first_party BOOLEAN NOT NULL DEFAULT TRUE;
ALTER TABLE oauth_clients ADD COLUMN refresh_without_offline_access BOOLEAN NOT NULL DEFAULT FALSE;
CREATE TABLE oidc_auth_requests (
	id TEXT PRIMARY KEY,
	client_id TEXT NOT NULL,
	redirect_uri TEXT NOT NULL,
	scope TEXT NOT NULL,
	state TEXT NOT NULL,
	nonce TEXT NOT NULL,
	code_challenge TEXT NOT NULL,
	prompt TEXT NOT NULL,
	max_age INTEGER NOT NULL,
	login_hint TEXT NOT NULL,
	interaction_digest TEXT NOT NULL,
	session_id TEXT NOT NULL,
	created_at TIMESTAMP NOT NULL,
	expires_at TIMESTAMP NOT NULL,
	used_at TIMESTAMP
);
CREATE INDEX oidc_auth_requests_interaction ON oidc_auth_requests (interaction_digest);
CREATE INDEX oidc_auth_requests_expires_at ON oidc_auth_requests (expires_at);
CREATE TABLE oidc_codes (
	digest TEXT PRIMARY KEY,
	client_id TEXT NOT NULL,
	redirect_uri TEXT NOT NULL,
	scope TEXT NOT NULL,
	nonce TEXT NOT NULL,
	code_challenge TEXT NOT NULL,
	session_id TEXT NOT NULL,
	user_id TEXT NOT NULL,
	created_at TIMESTAMP NOT NULL,
	expires_at TIMESTAMP NOT NULL,
	used_at TIMESTAMP,
	family_id TEXT NOT NULL DEFAULT '',
	access_jti TEXT NOT NULL DEFAULT '',
	access_expires_at TIMESTAMP
);
CREATE INDEX oidc_codes_expires_at ON oidc_codes (expires_at);
CREATE TABLE oidc_browser_sessions (
	digest TEXT PRIMARY KEY,
	session_id TEXT NOT NULL,
	user_id TEXT NOT NULL,
	created_at TIMESTAMP NOT NULL,
	expires_at TIMESTAMP NOT NULL
);
CREATE INDEX oidc_browser_sessions_session_id ON oidc_browser_sessions (session_id);
CREATE TABLE oidc_consents (
	user_id TEXT NOT NULL,
	client_id TEXT NOT NULL,
	scope TEXT NOT NULL,
	created_at TIMESTAMP NOT NULL,
	PRIMARY KEY (user_id, client_id)
);
`},
		// organization_id on the authorization request: the request and
		// its code carry the organization context into the tokens.
		{ID: "token/0012_oidc_organization_id", SQL: `
ALTER TABLE oidc_auth_requests ADD COLUMN org_id TEXT NOT NULL DEFAULT '';
ALTER TABLE oidc_codes ADD COLUMN org_id TEXT NOT NULL DEFAULT '';
`},
	}
}
