package app

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/latch-dev/latch/config"
	"github.com/latch-dev/latch/credentials"
	"github.com/latch-dev/latch/experience"
	"github.com/latch-dev/latch/experience/connector"
	"github.com/latch-dev/latch/experience/connector/oauth2"
	"github.com/latch-dev/latch/experience/connector/oidc"
	"github.com/latch-dev/latch/experience/connector/saml"
	"github.com/latch-dev/latch/experience/messaging"
	"github.com/latch-dev/latch/store"
	"github.com/latch-dev/latch/token"
)

// Migrations lists every package's schema steps in dependency order.
func Migrations() [][]store.Migration {
	return [][]store.Migration{token.Migrations(), experience.Migrations()}
}

// Services are Latch's domain services over one database, for the server
// and for CLI commands that act without HTTP.
type Services struct {
	Config config.Config
	DB     *store.DB
	Tokens *token.Service
	Engine *experience.Engine
	Hasher *credentials.Hasher
	// Connectors deliver verification codes (nil channels: not configured).
	Connectors *messaging.Connectors
	worker     *credentials.HashWorker // nil: hashes run in this process
}

// derivedKey derives a purpose-specific key from the deployment secret, so
// one secret can key several mechanisms without reusing the same key.
func derivedKey(secret []byte, purpose string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(purpose))
	return m.Sum(nil)
}

// Open connects to the configured database, applies migrations when
// migrate is true (else refuses to run on an outdated schema), builds the
// domain services and makes sure signing keys exist.
func Open(ctx context.Context, cfg config.Config, log *slog.Logger, migrate bool, opts ...OpenOption) (*Services, error) {
	return open(ctx, cfg, log, migrate, true, opts...)
}

// OpenOption adds to what Open builds from the configuration.
type OpenOption func(*openOptions)

type openOptions struct {
	worker *credentials.HashWorker
}

// WithHashWorker computes the password hashes in the hash worker process w
// (the gate stays in this one); Services.Close stops it. Without it,
// hashes run in this process.
func WithHashWorker(w *credentials.HashWorker) OpenOption {
	return func(o *openOptions) { o.worker = w }
}

// OpenExisting opens the services for a command that only reads: it never
// creates a SQLite file, applies a migration or generates a signing key,
// so running one in the wrong directory leaves nothing behind.
func OpenExisting(ctx context.Context, cfg config.Config, log *slog.Logger) (*Services, error) {
	if err := mustExist(cfg.DatabaseURL); err != nil {
		return nil, err
	}
	return open(ctx, cfg, log, false, false)
}

// Migrate applies the pending migrations and returns their ids.
func Migrate(ctx context.Context, cfg config.Config) ([]string, error) {
	db, err := store.Open(ctx, cfg.DatabaseURL, store.Options{MaxOpenConns: cfg.DBMaxConns})
	if err != nil {
		return nil, err
	}
	defer db.Close()
	return db.Migrate(ctx, Migrations()...)
}

// mustExist refuses a SQLite database URL whose file is missing (opening
// it would create an empty one).
func mustExist(dbURL string) error {
	path, ok := strings.CutPrefix(dbURL, "sqlite://")
	if !ok {
		return nil
	}
	path, _, _ = strings.Cut(path, "?")
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("no database at %s: nothing to read yet (run `latch migrate` or `latch serve` first, "+
			"from the directory holding latch-data, or set LATCH_DATA_DIR or LATCH_DATABASE_URL)", path)
	}
	return nil
}

func open(ctx context.Context, cfg config.Config, log *slog.Logger, migrate, ensureKeys bool, opts ...OpenOption) (*Services, error) {
	var o openOptions
	for _, opt := range opts {
		opt(&o)
	}
	db, err := store.Open(ctx, cfg.DatabaseURL, store.Options{MaxOpenConns: cfg.DBMaxConns,
		// A write waits for SQLite's lock for most of what its request may
		// last, and gives up as busy (not as the deadline passing) before it.
		BusyTimeout: busyTimeout(cfg.RequestTimeout)})
	if err != nil {
		return nil, err
	}
	if migrate {
		applied, err := db.Migrate(ctx, Migrations()...)
		if err != nil {
			db.Close()
			return nil, err
		}
		if len(applied) > 0 {
			log.Info("applied migrations", slog.Any("ids", applied))
		}
	} else {
		pending, err := db.Pending(ctx, Migrations()...)
		if err != nil {
			db.Close()
			return nil, err
		}
		if len(pending) > 0 {
			db.Close()
			return nil, fmt.Errorf("the database schema is outdated (%d migrations pending): run `latch migrate`", len(pending))
		}
	}
	sealer, err := credentials.NewSealer(cfg.SecretKeyBytes)
	if err != nil {
		db.Close()
		return nil, err
	}
	hashing := []credentials.HasherOption{credentials.WithImportBudget(importBudget(cfg))}
	if o.worker != nil {
		hashing = append(hashing, credentials.WithWorker(o.worker))
	}
	hasher := credentials.NewHasher(credentials.Argon2Params{
		MemoryKiB: cfg.Argon2MemoryKiB, Iterations: cfg.Argon2Iterations, Parallelism: cfg.Argon2Parallelism,
	}, hashGate(cfg), hashing...)
	connectors, err := messaging.New(messaging.Config{
		Env: cfg.Env, SMTPURL: cfg.SMTPURL, SMTPFrom: cfg.SMTPFrom, SMSWebhookURL: cfg.SMSWebhookURL,
		SMSWebhookSecret: cfg.SMSWebhookSecret, DevConnector: cfg.DevConnector,
	}, log)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("config: %w", err)
	}
	pepper, err := credentials.BackupCodePepper(cfg.SecretKeyBytes)
	if err != nil {
		db.Close()
		return nil, err
	}
	webauthn, err := credentials.NewWebAuthn(credentials.WebAuthnConfig{RPID: cfg.WebAuthnRPID, RPName: cfg.WebAuthnRPName,
		Origins: strings.Split(cfg.WebAuthnOrigins, ",")})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("config: LATCH_WEBAUTHN_*: %w", err)
	}
	peers := &sessionPeers{}
	engine := experience.New(db, hasher, log, experience.Options{
		SessionTTL: cfg.SessionTTL, PendingSessionTTL: cfg.PendingSessionTTL, ResetTokenTTL: cfg.ResetTokenTTL,
		UsernameCaseSensitive: cfg.UsernameCaseSensitive, SettingsCacheTTL: cfg.SettingsCacheTTL,
		CodePepper: derivedKey(cfg.SecretKeyBytes, "latch/verification-code-pepper"), Connectors: connectors,
		Sealer: sealer, BackupCodePepper: pepper, WebAuthn: webauthn, TOTPIssuer: cfg.WebAuthnRPName,
		Clients: peers, ReservationTTL: cfg.LockoutReservationTTL,
		Upstream:     connector.Kinds{"oidc": oidc.Kind{}, "oauth2": oauth2.Kind{}, "saml": saml.Kind{}},
		ConnectorURL: samlURL(cfg.Issuer),
	})
	tokens := token.New(db, sealer, token.Options{
		Issuer: cfg.Issuer, APIResource: cfg.APIResource,
		ClientTokenTTL: cfg.ClientTokenTTL, AccessTokenTTL: cfg.AccessTokenTTL, IDTokenTTL: cfg.IDTokenTTL,
		RefreshTokenTTL: cfg.RefreshTokenTTL, RefreshReuseGrace: cfg.RefreshReuseGrace, VerifyCacheTTL: cfg.TokenVerifyCacheTTL, SigningAlg: cfg.SigningAlg,
		KeyCacheTTL: cfg.KeyCacheTTL, ClientCacheTTL: cfg.ClientCacheTTL,
		Audit: tokenAudit{audit: engine.Audit, log: log},
	})
	peers.clients = tokens.Clients
	if ensureKeys {
		if err := tokens.Keys.Ensure(ctx); err != nil {
			db.Close()
			return nil, err
		}
	}
	return &Services{Config: cfg, DB: db, Tokens: tokens, Engine: engine, Hasher: hasher, Connectors: connectors, worker: o.worker}, nil
}

// tokenAudit writes the token service's events (key rotations, client
// changes) to the audit log, which the experience package owns: token and
// experience do not import each other, so app plugs one into the other. The
// events are the token service's own (it sends them from the operations
// themselves), so every caller — CLI, scheduler, tests — is audited alike.
type tokenAudit struct {
	audit *experience.Audit
	log   *slog.Logger
}

func (t tokenAudit) Audit(ctx context.Context, ev token.AuditEvent) {
	rec := experience.AuditEvent{Event: ev.Event, Outcome: experience.OutcomeSuccess, ClientID: ev.ClientID, Data: ev.Data}
	// A change asked for over the management API names the client that
	// asked (ClientID is the client the event is about).
	if actor, ok := actorOf(ctx); ok {
		rec.Data = map[string]any{"by_client_id": actor.clientID}
		for k, v := range ev.Data {
			rec.Data[k] = v
		}
		rec.IPAddress = actor.ip
	}
	err := t.audit.Record(ctx, rec)
	if err != nil {
		t.log.ErrorContext(ctx, "audit write failed", slog.String("event", ev.Event), slog.String("error", err.Error()))
	}
}

// sessionPeers answers the engine's question about clients from the token
// service's client store, which is built after the engine (it audits
// through the engine's log).
type sessionPeers struct{ clients *token.Clients }

func (p *sessionPeers) SharesSessions(ctx context.Context, clientID string) (bool, error) {
	return p.clients.SharesSessions(ctx, clientID)
}

func (p *sessionPeers) AllowsRedirect(ctx context.Context, clientID, uri string) (bool, error) {
	return p.clients.AllowsRedirect(ctx, clientID, uri)
}

// Close releases the database.
func (s *Services) Close() error {
	if s.worker != nil {
		_ = s.worker.Close() // after the server drained: no hash is waited for
	}
	return s.DB.Close()
}

// NewServer builds the HTTP app over the services.
func (s *Services) NewServer(log *slog.Logger) *App {
	return New(Deps{Config: s.Config, Logger: log, DB: s.DB, Tokens: s.Tokens, Engine: s.Engine, Gate: s.Hasher.Gate(), HashWorker: s.worker})
}

// RunHousekeeping deletes dead rows every interval until ctx ends (the
// server's shutdown): refresh tokens, authorization requests, codes,
// browser sessions and Latch sessions a day past their expiry (or
// revocation), and lockout counters that protect nothing any more. Every
// replica may run it; the deletes are batched and idempotent. Audit events
// are kept: how long is a retention policy, not housekeeping.
func (s *Services) RunHousekeeping(ctx context.Context, log *slog.Logger, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.Housekeep(ctx, log)
		}
	}
}

// housekeepingRetention keeps dead rows a day for audits and, for codes,
// replay detection.
const housekeepingRetention = 24 * time.Hour

// Housekeep runs one round of RunHousekeeping. A failing purge does not
// stop the others.
func (s *Services) Housekeep(ctx context.Context, log *slog.Logger) {
	failed := func(table string, err error) {
		if err != nil && ctx.Err() == nil {
			log.Error("housekeeping failed", slog.String("table", table), slog.String("error", err.Error()))
		}
	}
	n, err := s.Tokens.PurgeRefreshTokens(ctx, housekeepingRetention)
	failed("refresh_tokens", err)
	flow, err := s.Tokens.PurgeAuthorizationFlow(ctx, housekeepingRetention, 0)
	failed("authorization flow", err)
	engine, err := s.Engine.PurgeDead(ctx, housekeepingRetention, 0)
	failed("sessions and sentinel_counters", err)
	if n > 0 || flow.Total() > 0 || engine.Total() > 0 {
		log.Info("housekeeping", slog.Int64("refresh_tokens_purged", n), slog.Int64("auth_requests_purged", flow.AuthRequests),
			slog.Int64("codes_purged", flow.Codes), slog.Int64("browser_sessions_purged", flow.BrowserSessions),
			slog.Int64("sessions_purged", engine.Sessions), slog.Int64("sentinel_counters_purged", engine.SentinelCounters))
	}
}

// hashGate builds the hashing admission gate. Zero settings take the
// gate's defaults: one hash per CPU, a queue of 8 units per hash (a closed
// loop of 9 × the CPUs is never refused), and waits bounded by the measured
// hash time (LATCH_HASH_QUEUE_WAIT 0).
func hashGate(cfg config.Config) *credentials.Gate {
	return credentials.NewGate(cfg.HashConcurrency, cfg.HashQueue, cfg.HashQueueWait)
}

// importBudget is the most an imported password hash may cost to verify.
func importBudget(cfg config.Config) credentials.ImportBudget {
	return credentials.ImportBudget{
		Argon2MemoryKiB: cfg.HashImportMaxArgon2MemoryKiB, Argon2Iterations: cfg.HashImportMaxArgon2Iterations,
		Argon2Parallelism: cfg.HashImportMaxArgon2Parallelism, BcryptCost: cfg.HashImportMaxBcryptCost,
		ScryptMemoryKiB: cfg.HashImportMaxScryptMemoryKiB, PBKDF2Iterations: cfg.HashImportMaxPBKDF2Iterations,
	}
}

// busyTimeout is the SQLite lock wait for requests of the given deadline:
// three quarters of it, so that a write blocked by another connection's lock
// is told apart (SQLITE_BUSY, latch_db_unavailable_total{reason="busy"})
// from a request that ran out of time for other reasons.
func busyTimeout(requestTimeout time.Duration) time.Duration {
	return max(requestTimeout*3/4, time.Millisecond)
}
