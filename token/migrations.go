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
	}
}
