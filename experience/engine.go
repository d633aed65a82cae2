// Package experience is the Experience engine: it decides every sign-in.
// It holds the interaction (events, verification records, identification,
// profile, submit), the verification kinds, the rules that span them (MFA
// policy, sign-up requirements, the lockout sentinel), sessions, stored
// settings and the audit log; users and their identifiers live in
// experience/directory below it. It knows nothing of HTTP or tokens: it says
// who authenticated and how, and app turns that into tokens.
package experience

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/latch-dev/latch/experience/connector"

	"github.com/latch-dev/latch/credentials"
	"github.com/latch-dev/latch/experience/directory"
	"github.com/latch-dev/latch/experience/messaging"
	"github.com/latch-dev/latch/store"
)

// Options configure the engine.
type Options struct {
	SessionTTL            time.Duration
	PendingSessionTTL     time.Duration
	ResetTokenTTL         time.Duration
	UsernameCaseSensitive bool
	SettingsCacheTTL      time.Duration
	// CodePepper keys verification-code digests (derived from the
	// deployment's secret key).
	CodePepper []byte
	// Connectors deliver codes; nil channels answer 501.
	Connectors *messaging.Connectors
	// Sealer encrypts TOTP secrets at rest.
	Sealer *credentials.Sealer
	// BackupCodePepper keys backup-code digests.
	BackupCodePepper []byte
	// WebAuthn runs passkey ceremonies (nil: WebAuthn unavailable).
	WebAuthn *credentials.WebAuthn
	// TOTPIssuer names the service in authenticator apps.
	TOTPIssuer string
	// Clients tells which OAuth clients share sessions (cross-application
	// SSO); nil: no client ever uses another's session.
	Clients ClientDirectory
	// Upstream are the protocols of social and SSO connectors by provider
	// name (nil: none can be created).
	Upstream connector.Kinds
	// UpstreamHTTP reaches identity providers (nil: a client with a
	// 10-second timeout).
	UpstreamHTTP *http.Client
	// ConnectorURL is Latch's public URL of a connector (SAML's assertion
	// consumer service; the app owns the route). Nil: SAML unavailable.
	ConnectorURL func(provider, id string) string
	// Memberships applies SSO connectors' JIT organizations (nil: the
	// ids are stored and not applied).
	Memberships Memberships
	// ReservationTTL bounds how long an attempt's lockout reservation
	// counts when it is never settled (0: DefaultReservationTTL).
	ReservationTTL time.Duration
}

// ClientDirectory is what the engine must know of OAuth clients, which it
// does not own.
type ClientDirectory interface {
	// SharesSessions reports whether a client exists and takes part in
	// cross-application SSO.
	SharesSessions(ctx context.Context, clientID string) (bool, error)
	// AllowsRedirect reports whether a client registered uri as a
	// redirect URI of social and SSO sign-ins.
	AllowsRedirect(ctx context.Context, clientID, uri string) (bool, error)
}

// Engine is the Experience engine.
type Engine struct {
	db     *store.DB
	hasher *credentials.Hasher
	log    *slog.Logger
	opts   Options
	now    func() time.Time
	norm   Normalizer

	Users    *Users
	Orgs     *directory.Organizations
	OrgRoles *directory.OrgRoles
	Members  *directory.Memberships
	Sessions *Sessions
	Sentinel *Sentinel
	Settings *SettingsStore
	Audit    *Audit
	Factors  *Factors
	// Connectors are the social and SSO connectors; Identities the
	// upstream identities linked to accounts.
	Connectors *Connectors
	Identities *directory.Identities
	resets     *resetTokens

	interactions *Interactions
	codes        *Codes
	connectors   *messaging.Connectors
	sealer       *credentials.Sealer
	webauthn     *credentials.WebAuthn

	// observers hear of every audited event (the HTTP layer's metrics and
	// logs); see Observe.
	observeMu sync.RWMutex
	observers []func(context.Context, AuditEvent)
}

// Observe registers fn to hear of every audit event once recorded: the
// HTTP layer counts lockouts and refresh-token reuse and logs them. fn runs
// on the request's goroutine and must be quick.
func (e *Engine) Observe(fn func(context.Context, AuditEvent)) {
	e.observeMu.Lock()
	defer e.observeMu.Unlock()
	e.observers = append(e.observers, fn)
}

// New returns an engine over db.
func New(db *store.DB, hasher *credentials.Hasher, log *slog.Logger, opts Options) *Engine {
	now := func() time.Time { return time.Now().UTC() }
	norm := Normalizer{UsernameCaseSensitive: opts.UsernameCaseSensitive}
	hc := opts.UpstreamHTTP
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	audit := &Audit{db: db, now: now}
	roles := directory.NewOrgRoles(db, now)
	e := &Engine{
		db: db, hasher: hasher, log: log, opts: opts, now: now, norm: norm,
		Users:      directory.NewUsers(db, norm, now),
		Orgs:       directory.NewOrganizations(db, roles, now),
		OrgRoles:   roles,
		Members:    directory.NewMemberships(db, roles, now),
		Sessions:   &Sessions{db: db, now: now, ttl: opts.SessionTTL, pendingTTL: opts.PendingSessionTTL},
		Sentinel:   &Sentinel{db: db, now: now, ttl: opts.ReservationTTL},
		Settings:   &SettingsStore{db: db, ttl: opts.SettingsCacheTTL, now: now},
		Audit:      audit,
		Factors:    &Factors{db: db, now: now},
		Connectors: &Connectors{db: db, now: now, sealer: opts.Sealer, kinds: opts.Upstream, hc: hc, audit: audit, endpoint: opts.ConnectorURL},
		Identities: directory.NewIdentities(db, now),
		resets:     &resetTokens{db: db, now: now, ttl: opts.ResetTokenTTL},

		interactions: &Interactions{db: db, now: now},
		codes:        &Codes{db: db, now: now, pepper: opts.CodePepper},
		connectors:   opts.Connectors,
		sealer:       opts.Sealer,
		webauthn:     opts.WebAuthn,
	}
	if e.opts.Memberships == nil {
		// Organizations live in the directory: SSO connectors' JIT
		// organizations join them unless a caller wires another service.
		e.opts.Memberships = connectorJIT{e}
	}
	return e
}

// Normalizer returns the engine's identifier normalizer.
func (e *Engine) Normalizer() Normalizer { return e.norm }

// audit records an event; a failure to record is logged, never shown to the
// caller (the sign-in itself already happened or failed).
func (e *Engine) audit(ctx context.Context, ev AuditEvent) {
	if err := e.Audit.Record(ctx, ev); err != nil {
		e.log.ErrorContext(ctx, "audit write failed", slog.String("event", ev.Event), slog.String("error", err.Error()))
	}
	e.observeMu.RLock()
	defer e.observeMu.RUnlock()
	for _, fn := range e.observers {
		fn(ctx, ev)
	}
}
