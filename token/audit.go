package token

import "context"

// Audit event names of this package (DESIGN §5: key rotation and client
// changes are security events).
const (
	EventKeyRotated          = "signing_key.rotated"
	EventClientCreated       = "client.created"
	EventClientDeleted       = "client.deleted"
	EventClientUpdated       = "client.updated"
	EventClientSecretRotated = "client.secret_rotated"
	// EventCodeReplayed: an authorization code was presented again; what
	// its first use issued was revoked.
	EventCodeReplayed = "authorization_code.replayed"
)

// AuditEvent is a security event of this package. Data holds identifiers,
// names and flags only — never a secret, a digest or a key.
type AuditEvent struct {
	Event    string
	ClientID string
	Data     map[string]any
}

// AuditSink receives this package's audit events. The audit log itself
// belongs to another package (token does not import it); whoever composes
// the services injects a sink through Options.Audit. Events are sent after
// the change they describe has committed; a sink reports its own failures,
// since the change stands either way.
type AuditSink interface {
	Audit(ctx context.Context, ev AuditEvent)
}

// audit sends ev to sink, if there is one.
func audit(ctx context.Context, sink AuditSink, ev AuditEvent) {
	if sink != nil {
		sink.Audit(ctx, ev)
	}
}
