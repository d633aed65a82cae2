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
		// Only the SHA-256 digest is stored (a leaked table yields no usable
		// token); family_id chains the rotations of one grant so that reuse
		// of a rotated token can revoke every descendant (RFC 9700 §4.14);
		// used_at stays NULL until the token is rotated, which is what the
		// single-winner conditional UPDATE tests. The indexes serve family,
		// session (logout) and user (sign out everywhere) revocation, and
		// expires_at the purge of dead rows.
		{ID: "token/0004_refresh_tokens", SQL: `
CREATE TABLE refresh_tokens (
	id TEXT PRIMARY KEY,
	digest TEXT NOT NULL UNIQUE,
	family_id TEXT NOT NULL,
	client_id TEXT NOT NULL,
	user_id TEXT NOT NULL,
	session_id TEXT NOT NULL,
	audience TEXT NOT NULL,
	scope TEXT NOT NULL,
	org_id TEXT NOT NULL,
	created_at TIMESTAMP NOT NULL,
	expires_at TIMESTAMP NOT NULL,
	used_at TIMESTAMP,
	revoked_at TIMESTAMP
);
CREATE INDEX refresh_tokens_family_id ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_session_id ON refresh_tokens (session_id);
CREATE INDEX refresh_tokens_user_id ON refresh_tokens (user_id);
CREATE INDEX refresh_tokens_expires_at ON refresh_tokens (expires_at);
`},
	}
}
