// Package config holds Latch's runtime configuration: defaults, an optional
// YAML file, LATCH_* environment overrides and validation.
//
// Every setting has one YAML key and one environment variable. Environment
// variables win over the file, the file wins over the defaults. Validation
// errors name the setting (its environment variable) so an operator can fix
// a bad deployment from one log line.
package config

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Environments.
const (
	EnvDevelopment = "development"
	EnvProduction  = "production"
)

// Where `latch serve` computes password hashes (LATCH_HASH_WORKER).
const (
	HashWorkerProcess = "process"
	HashWorkerInline  = "inline"
)

// Config is the whole runtime configuration. Field tags: `yaml` is the key in
// the config file, `env` the environment variable that overrides it.
type Config struct {
	Env      string `yaml:"env" env:"LATCH_ENV"`
	LogLevel string `yaml:"log_level" env:"LATCH_LOG_LEVEL"`

	Addr        string `yaml:"addr" env:"LATCH_ADDR"`
	Issuer      string `yaml:"issuer" env:"LATCH_ISSUER"`
	APIResource string `yaml:"api_resource" env:"LATCH_API_RESOURCE"`

	DataDir     string `yaml:"data_dir" env:"LATCH_DATA_DIR"`
	DatabaseURL string `yaml:"database_url" env:"LATCH_DATABASE_URL"`
	AutoMigrate bool   `yaml:"auto_migrate" env:"LATCH_AUTO_MIGRATE"`
	DBMaxConns  int    `yaml:"db_max_conns" env:"LATCH_DB_MAX_CONNS"`

	// SecretKey is the base64 encoding of 32 random bytes. It encrypts signing
	// keys and other secrets at rest. Decoded into SecretKeyBytes by Load.
	SecretKey      string `yaml:"secret_key" env:"LATCH_SECRET_KEY"`
	SecretKeyBytes []byte `yaml:"-"`
	// SecretKeyGenerated is true when Load generated a development key.
	SecretKeyGenerated bool `yaml:"-"`

	SigningAlg          string        `yaml:"signing_alg" env:"LATCH_SIGNING_ALG"`
	KeyRotationInterval time.Duration `yaml:"key_rotation_interval" env:"LATCH_KEY_ROTATION_INTERVAL"`
	KeyCacheTTL         time.Duration `yaml:"key_cache_ttl" env:"LATCH_KEY_CACHE_TTL"`
	ClientCacheTTL      time.Duration `yaml:"client_cache_ttl" env:"LATCH_CLIENT_CACHE_TTL"`
	// TokenVerifyCacheTTL: a verified access token is trusted this long
	// without re-checking signature and revocation (revocation on another
	// replica takes effect within it).
	TokenVerifyCacheTTL time.Duration `yaml:"token_verify_cache_ttl" env:"LATCH_TOKEN_VERIFY_CACHE_TTL"`

	ClientTokenTTL  time.Duration `yaml:"client_token_ttl" env:"LATCH_CLIENT_TOKEN_TTL"`
	AccessTokenTTL  time.Duration `yaml:"access_token_ttl" env:"LATCH_ACCESS_TOKEN_TTL"`
	IDTokenTTL      time.Duration `yaml:"id_token_ttl" env:"LATCH_ID_TOKEN_TTL"`
	RefreshTokenTTL time.Duration `yaml:"refresh_token_ttl" env:"LATCH_REFRESH_TOKEN_TTL"`
	// RefreshReuseGrace: a rotated refresh token presented again within this
	// window is refused without revoking its family (parallel or retried
	// refreshes by the legitimate client); later it counts as theft. The
	// default 0 is strict (RFC 9700 §4.14.2): any replay of a rotated token
	// ends its family and session.
	RefreshReuseGrace time.Duration `yaml:"refresh_reuse_grace" env:"LATCH_REFRESH_REUSE_GRACE"`
	SessionTTL        time.Duration `yaml:"session_ttl" env:"LATCH_SESSION_TTL"`
	PendingSessionTTL time.Duration `yaml:"pending_session_ttl" env:"LATCH_PENDING_SESSION_TTL"`
	ResetTokenTTL     time.Duration `yaml:"reset_token_ttl" env:"LATCH_RESET_TOKEN_TTL"`

	ReadTimeout  time.Duration `yaml:"read_timeout" env:"LATCH_READ_TIMEOUT"`
	WriteTimeout time.Duration `yaml:"write_timeout" env:"LATCH_WRITE_TIMEOUT"`
	// RequestTimeout is every request's deadline. It reaches the database
	// driver through the request context, so a database that stops
	// answering costs a request this long at most (then 503), and bounds
	// SQLite's wait for the write lock. Shorter than WriteTimeout, so the
	// 503 can still be written.
	RequestTimeout  time.Duration `yaml:"request_timeout" env:"LATCH_REQUEST_TIMEOUT"`
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout" env:"LATCH_SHUTDOWN_TIMEOUT"`
	// HousekeepingInterval is how often dead rows (expired refresh tokens,
	// authorization requests, codes, browser sessions) are purged.
	HousekeepingInterval time.Duration `yaml:"housekeeping_interval" env:"LATCH_HOUSEKEEPING_INTERVAL"`
	BodyLimit            string        `yaml:"body_limit" env:"LATCH_BODY_LIMIT"`
	TrustProxy           bool          `yaml:"trust_proxy" env:"LATCH_TRUST_PROXY"`

	Argon2MemoryKiB   uint32        `yaml:"argon2_memory_kib" env:"LATCH_ARGON2_MEMORY_KIB"`
	Argon2Iterations  uint32        `yaml:"argon2_iterations" env:"LATCH_ARGON2_ITERATIONS"`
	Argon2Parallelism uint8         `yaml:"argon2_parallelism" env:"LATCH_ARGON2_PARALLELISM"`
	HashConcurrency   int           `yaml:"hash_concurrency" env:"LATCH_HASH_CONCURRENCY"`
	HashQueue         int           `yaml:"hash_queue" env:"LATCH_HASH_QUEUE"`
	HashQueueWait     time.Duration `yaml:"hash_queue_wait" env:"LATCH_HASH_QUEUE_WAIT"`
	// HashWorker says where `latch serve` computes password hashes:
	// "process" (a child process of its own, see credentials.HashWorker)
	// or "inline" (in the server process).
	HashWorker string `yaml:"hash_worker" env:"LATCH_HASH_WORKER"`

	// The import budget: the most an imported password hash may cost to
	// verify (every sign-in attempt against it pays that, hash-DoS).
	HashImportMaxArgon2MemoryKiB   uint32 `yaml:"hash_import_max_argon2_memory_kib" env:"LATCH_HASH_IMPORT_MAX_ARGON2_MEMORY_KIB"`
	HashImportMaxArgon2Iterations  uint32 `yaml:"hash_import_max_argon2_iterations" env:"LATCH_HASH_IMPORT_MAX_ARGON2_ITERATIONS"`
	HashImportMaxArgon2Parallelism uint8  `yaml:"hash_import_max_argon2_parallelism" env:"LATCH_HASH_IMPORT_MAX_ARGON2_PARALLELISM"`
	HashImportMaxBcryptCost        int    `yaml:"hash_import_max_bcrypt_cost" env:"LATCH_HASH_IMPORT_MAX_BCRYPT_COST"`
	HashImportMaxScryptMemoryKiB   uint32 `yaml:"hash_import_max_scrypt_memory_kib" env:"LATCH_HASH_IMPORT_MAX_SCRYPT_MEMORY_KIB"`
	HashImportMaxPBKDF2Iterations  uint32 `yaml:"hash_import_max_pbkdf2_iterations" env:"LATCH_HASH_IMPORT_MAX_PBKDF2_ITERATIONS"`

	UsernameCaseSensitive bool          `yaml:"username_case_sensitive" env:"LATCH_USERNAME_CASE_SENSITIVE"`
	SettingsCacheTTL      time.Duration `yaml:"settings_cache_ttl" env:"LATCH_SETTINGS_CACHE_TTL"`
	// LockoutReservationTTL: an attempt holds its place in the lockout
	// budget while it is checked; one never settled (a crashed process)
	// stops counting between half of this and this.
	LockoutReservationTTL time.Duration `yaml:"lockout_reservation_ttl" env:"LATCH_LOCKOUT_RESERVATION_TTL"`

	// Message connectors for verification codes.
	SMTPURL          string `yaml:"smtp_url" env:"LATCH_SMTP_URL"`
	SMTPFrom         string `yaml:"smtp_from" env:"LATCH_SMTP_FROM"`
	SMSWebhookURL    string `yaml:"sms_webhook_url" env:"LATCH_SMS_WEBHOOK_URL"`
	SMSWebhookSecret string `yaml:"sms_webhook_secret" env:"LATCH_SMS_WEBHOOK_SECRET"`
	DevConnector     bool   `yaml:"dev_connector" env:"LATCH_DEV_CONNECTOR"`

	// WebAuthn relying party: the id (a registrable domain, default the
	// issuer's host), the display name and the origins allowed to answer.
	WebAuthnRPID    string `yaml:"webauthn_rp_id" env:"LATCH_WEBAUTHN_RP_ID"`
	WebAuthnRPName  string `yaml:"webauthn_rp_name" env:"LATCH_WEBAUTHN_RP_NAME"`
	WebAuthnOrigins string `yaml:"webauthn_origins" env:"LATCH_WEBAUTHN_ORIGINS"`

	// PprofAddr, when set, serves Go's profiling endpoints on a separate
	// loopback listener (never on the public address).
	PprofAddr string `yaml:"pprof_addr" env:"LATCH_PPROF_ADDR"`
	// MetricsAddr, when set, serves /metrics on a listener of its own (and
	// not on the public address).
	MetricsAddr string `yaml:"metrics_addr" env:"LATCH_METRICS_ADDR"`

	IPRateLimit float64 `yaml:"ip_rate_limit" env:"LATCH_IP_RATE_LIMIT"`
	IPRateBurst int     `yaml:"ip_rate_burst" env:"LATCH_IP_RATE_BURST"`
}

// Default returns the configuration used when nothing is set.
func Default() Config {
	return Config{
		Env:                  EnvDevelopment,
		LogLevel:             "info",
		Addr:                 "127.0.0.1:8080",
		DataDir:              "./latch-data",
		AutoMigrate:          true,
		DBMaxConns:           16,
		SigningAlg:           "ES256",
		KeyRotationInterval:  90 * 24 * time.Hour,
		KeyCacheTTL:          30 * time.Second,
		ClientCacheTTL:       5 * time.Second,
		TokenVerifyCacheTTL:  5 * time.Second,
		ClientTokenTTL:       time.Hour,
		AccessTokenTTL:       time.Hour,
		IDTokenTTL:           time.Hour,
		RefreshTokenTTL:      14 * 24 * time.Hour,
		RefreshReuseGrace:    0,
		SessionTTL:           14 * 24 * time.Hour,
		PendingSessionTTL:    10 * time.Minute,
		ResetTokenTTL:        10 * time.Minute,
		ReadTimeout:          10 * time.Second,
		WriteTimeout:         30 * time.Second,
		RequestTimeout:       10 * time.Second,
		ShutdownTimeout:      15 * time.Second,
		HousekeepingInterval: time.Hour,
		BodyLimit:            "64K",
		Argon2MemoryKiB:      19456,
		Argon2Iterations:     2,
		Argon2Parallelism:    1,
		HashConcurrency:      0, // 0 = number of CPUs
		HashQueue:            0, // 0 = 8 × concurrency
		HashQueueWait:        0, // 0 = adaptive: twice the time a full queue takes to drain, at least 1s
		HashWorker:           HashWorkerProcess,
		SettingsCacheTTL:     2 * time.Second,
		IPRateLimit:          0,
		IPRateBurst:          20,

		// A few hash times, and longer than a request may wait for its hash.
		LockoutReservationTTL: 10 * time.Second,

		// Import budget (credentials.DefaultImportBudget).
		HashImportMaxArgon2MemoryKiB:   65536,
		HashImportMaxArgon2Iterations:  10,
		HashImportMaxArgon2Parallelism: 4,
		HashImportMaxBcryptCost:        14,
		HashImportMaxScryptMemoryKiB:   131072,
		HashImportMaxPBKDF2Iterations:  1000000,
	}
}

// Load builds the configuration from defaults, the YAML file at path (if not
// empty) and the environment given by getenv (os.Getenv when nil). It
// validates the result and, in development, generates a secret key into the
// data directory when none is configured.
func Load(path string, getenv func(string) string) (Config, error) {
	return load(path, getenv, true)
}

// LoadExisting is Load for commands that only read: it never generates a
// secret key (nor creates the data directory), so a read-only command run
// in the wrong directory fails instead of leaving a fresh key behind.
func LoadExisting(path string, getenv func(string) string) (Config, error) {
	return load(path, getenv, false)
}

func load(path string, getenv func(string) string, generate bool) (Config, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	cfg := Default()
	// origin names where each setting came from, so an error speaks of the
	// YAML key the operator wrote, or else of the environment variable.
	origin := map[string]string{}
	if path != "" {
		if err := applyFile(&cfg, path, origin); err != nil {
			return cfg, err
		}
	}
	if err := applyEnv(&cfg, getenv, origin); err != nil {
		return cfg, err
	}
	name := func(env string) string {
		if o, ok := origin[env]; ok {
			return o
		}
		return env
	}
	if err := cfg.finish(name, generate); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// Peek reads the settings (defaults, file, environment) without validating
// or deriving anything, nor touching the data directory: for a command that
// needs one setting of a running server, such as the health check's address.
func Peek(path string, getenv func(string) string) (Config, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	cfg := Default()
	origin := map[string]string{}
	if path != "" {
		if err := applyFile(&cfg, path, origin); err != nil {
			return cfg, err
		}
	}
	return cfg, applyEnv(&cfg, getenv, origin)
}

// applyFile sets fields from a YAML file of settings. Each value goes
// through the parser the environment uses, so a bad value is reported in
// the same words whichever way it was given.
func applyFile(cfg *Config, path string, origin map[string]string) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: read %s: %w", path, err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return fmt.Errorf("config: %s: %w", path, err)
	}
	if len(doc.Content) == 0 {
		return nil // an empty file
	}
	top := doc.Content[0]
	if top.Kind != yaml.MappingNode {
		return fmt.Errorf("config: %s: line %d: must be a mapping of settings (key: value)", path, top.Line)
	}
	v := reflect.ValueOf(cfg).Elem()
	fields := map[string]int{}
	for i := 0; i < v.NumField(); i++ {
		if k := v.Type().Field(i).Tag.Get("yaml"); k != "" && k != "-" {
			fields[k] = i
		}
	}
	for i := 0; i+1 < len(top.Content); i += 2 {
		key, val := top.Content[i], top.Content[i+1]
		idx, ok := fields[key.Value]
		if !ok {
			return fmt.Errorf("config: %s: line %d: unknown setting %q", path, key.Line, key.Value)
		}
		where := fmt.Sprintf("%s: %s", path, key.Value)
		if val.Kind != yaml.ScalarNode {
			return fmt.Errorf("config: %s: must be a single value", where)
		}
		if val.Tag == "!!null" || val.Value == "" {
			continue // like an empty variable: unset
		}
		if err := setField(v.Field(idx), strings.TrimSpace(val.Value)); err != nil {
			return fmt.Errorf("config: %s: %v", where, err)
		}
		origin[v.Type().Field(idx).Tag.Get("env")] = where
	}
	return nil
}

// UnknownVariables returns the LATCH_* names in environ (KEY=value lines,
// as os.Environ gives) that are no setting: most often a typo, which would
// otherwise be ignored silently. LATCH_TEST_* belongs to the test suite.
func UnknownVariables(environ []string) []string {
	known := map[string]bool{}
	t := reflect.TypeOf(Config{})
	for i := 0; i < t.NumField(); i++ {
		if e := t.Field(i).Tag.Get("env"); e != "" {
			known[e] = true
		}
	}
	var unknown []string
	for _, kv := range environ {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "LATCH_") && !strings.HasPrefix(k, "LATCH_TEST_") && !known[k] {
			unknown = append(unknown, k)
		}
	}
	return unknown
}

// applyEnv overrides fields from their `env` variables.
func applyEnv(cfg *Config, getenv func(string) string, origin map[string]string) error {
	v := reflect.ValueOf(cfg).Elem()
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		name := t.Field(i).Tag.Get("env")
		if name == "" {
			continue
		}
		raw, ok := lookup(getenv, name)
		if !ok {
			continue
		}
		if err := setField(v.Field(i), strings.TrimSpace(raw)); err != nil {
			return fmt.Errorf("config: %s: %v", name, err)
		}
		delete(origin, name) // the environment wins over the file
	}
	return nil
}

func lookup(getenv func(string) string, name string) (string, bool) {
	s := getenv(name)
	return s, s != ""
}

func setField(f reflect.Value, raw string) error {
	switch f.Interface().(type) {
	case time.Duration:
		d, err := time.ParseDuration(raw)
		if err != nil {
			return fmt.Errorf("not a duration (e.g. 15m, 1h): %q", raw)
		}
		f.SetInt(int64(d))
		return nil
	}
	switch f.Kind() {
	case reflect.String:
		f.SetString(raw)
	case reflect.Bool:
		b, err := strconv.ParseBool(raw)
		if err != nil {
			return fmt.Errorf("not a boolean (true/false): %q", raw)
		}
		f.SetBool(b)
	case reflect.Int, reflect.Int64:
		n, err := strconv.ParseInt(raw, 10, 64)
		if err != nil {
			return fmt.Errorf("not an integer: %q", raw)
		}
		f.SetInt(n)
	case reflect.Uint8, reflect.Uint32:
		n, err := strconv.ParseUint(raw, 10, f.Type().Bits())
		if err != nil {
			return fmt.Errorf("not a non-negative integer that fits in %d bits: %q", f.Type().Bits(), raw)
		}
		f.SetUint(n)
	case reflect.Float64:
		n, err := strconv.ParseFloat(raw, 64)
		if err != nil {
			return fmt.Errorf("not a number: %q", raw)
		}
		f.SetFloat(n)
	default:
		return fmt.Errorf("unsupported setting type %s", f.Type())
	}
	return nil
}

// finish validates and derives the remaining fields.
// name(env) says where the setting was given (its YAML key or variable);
// generate allows creating a development secret key.
func (c *Config) finish(name func(env string) string, generate bool) error {
	bad := func(env, format string, args ...any) error {
		return fmt.Errorf("config: %s: %s", name(env), fmt.Sprintf(format, args...))
	}
	switch c.Env {
	case EnvDevelopment, EnvProduction:
	default:
		return bad("LATCH_ENV", "must be %q or %q, got %q", EnvDevelopment, EnvProduction, c.Env)
	}
	switch strings.ToLower(c.LogLevel) {
	case "debug", "info", "warn", "error":
	default:
		return bad("LATCH_LOG_LEVEL", "must be debug, info, warn or error, got %q", c.LogLevel)
	}
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return bad("LATCH_ADDR", "must be host:port, got %q", c.Addr)
	}
	if c.Issuer == "" {
		c.Issuer = devIssuer(c.Addr)
	}
	c.Issuer = strings.TrimRight(c.Issuer, "/")
	if u, err := url.Parse(c.Issuer); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return bad("LATCH_ISSUER", "must be an http(s) URL without query or fragment, got %q", c.Issuer)
	} else if c.Env == EnvProduction && u.Scheme != "https" {
		return bad("LATCH_ISSUER", "must use https in production, got %q", c.Issuer)
	}
	if c.WebAuthnRPID == "" {
		// A relying party id is a domain; an issuer on an IP address (local
		// development) gets "localhost".
		u, _ := url.Parse(c.Issuer)
		c.WebAuthnRPID = u.Hostname()
		if net.ParseIP(c.WebAuthnRPID) != nil {
			c.WebAuthnRPID = "localhost"
		}
	}
	if c.WebAuthnRPName == "" {
		c.WebAuthnRPName = "Latch"
	}
	if c.WebAuthnOrigins == "" {
		c.WebAuthnOrigins = c.Issuer
	}
	for _, o := range strings.Split(c.WebAuthnOrigins, ",") {
		if u, err := url.Parse(strings.TrimSpace(o)); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Path != "" {
			return bad("LATCH_WEBAUTHN_ORIGINS", "must be comma-separated origins like https://app.example.com, got %q", o)
		}
	}
	if c.APIResource == "" {
		c.APIResource = c.Issuer + "/api"
	}
	if u, err := url.Parse(c.APIResource); err != nil || !u.IsAbs() || u.Fragment != "" {
		return bad("LATCH_API_RESOURCE", "must be an absolute URI without fragment, got %q", c.APIResource)
	}
	if c.DataDir == "" {
		return bad("LATCH_DATA_DIR", "must not be empty")
	}
	if c.DatabaseURL == "" {
		c.DatabaseURL = "sqlite://" + filepath.ToSlash(filepath.Join(c.DataDir, "latch.db"))
	}
	if !strings.HasPrefix(c.DatabaseURL, "sqlite://") && !strings.HasPrefix(c.DatabaseURL, "postgres://") && !strings.HasPrefix(c.DatabaseURL, "postgresql://") {
		return bad("LATCH_DATABASE_URL", "must start with sqlite:// or postgres://")
	}
	if c.DBMaxConns < 1 {
		return bad("LATCH_DB_MAX_CONNS", "must be at least 1, got %d", c.DBMaxConns)
	}
	switch c.SigningAlg {
	case "ES256", "RS256":
	default:
		return bad("LATCH_SIGNING_ALG", "must be ES256 or RS256, got %q", c.SigningAlg)
	}
	durations := []struct {
		env string
		d   time.Duration
		min time.Duration
	}{
		{"LATCH_KEY_CACHE_TTL", c.KeyCacheTTL, 0},
		{"LATCH_CLIENT_CACHE_TTL", c.ClientCacheTTL, 0},
		{"LATCH_TOKEN_VERIFY_CACHE_TTL", c.TokenVerifyCacheTTL, 0},
		{"LATCH_SETTINGS_CACHE_TTL", c.SettingsCacheTTL, 0},
		{"LATCH_CLIENT_TOKEN_TTL", c.ClientTokenTTL, time.Minute},
		{"LATCH_ACCESS_TOKEN_TTL", c.AccessTokenTTL, time.Minute},
		{"LATCH_ID_TOKEN_TTL", c.IDTokenTTL, time.Minute},
		{"LATCH_REFRESH_TOKEN_TTL", c.RefreshTokenTTL, time.Minute},
		{"LATCH_REFRESH_REUSE_GRACE", c.RefreshReuseGrace, 0},
		{"LATCH_SESSION_TTL", c.SessionTTL, time.Minute},
		{"LATCH_PENDING_SESSION_TTL", c.PendingSessionTTL, time.Second},
		{"LATCH_RESET_TOKEN_TTL", c.ResetTokenTTL, time.Second},
		{"LATCH_READ_TIMEOUT", c.ReadTimeout, time.Second},
		{"LATCH_WRITE_TIMEOUT", c.WriteTimeout, time.Second},
		{"LATCH_REQUEST_TIMEOUT", c.RequestTimeout, 100 * time.Millisecond},
		{"LATCH_SHUTDOWN_TIMEOUT", c.ShutdownTimeout, 0},
		{"LATCH_HOUSEKEEPING_INTERVAL", c.HousekeepingInterval, time.Second},
		{"LATCH_HASH_QUEUE_WAIT", c.HashQueueWait, 0},
		{"LATCH_LOCKOUT_RESERVATION_TTL", c.LockoutReservationTTL, 100 * time.Millisecond},
	}
	for _, d := range durations {
		if d.d < d.min {
			return bad(d.env, "must be at least %s, got %s", d.min, d.d)
		}
	}
	if c.RequestTimeout >= c.WriteTimeout {
		return bad("LATCH_REQUEST_TIMEOUT", "must be shorter than LATCH_WRITE_TIMEOUT (%s), so the answer to a request past its deadline can still be written, got %s", c.WriteTimeout, c.RequestTimeout)
	}
	if c.KeyRotationInterval != 0 && c.KeyRotationInterval < time.Hour {
		return bad("LATCH_KEY_ROTATION_INTERVAL", "must be 0 (off) or at least 1h, got %s", c.KeyRotationInterval)
	}
	if c.TokenVerifyCacheTTL > time.Minute {
		return bad("LATCH_TOKEN_VERIFY_CACHE_TTL", "must be at most 1m (revocation elsewhere waits for it), got %s", c.TokenVerifyCacheTTL)
	}
	if c.RefreshReuseGrace > time.Minute {
		return bad("LATCH_REFRESH_REUSE_GRACE", "must be at most 1m (a longer window hides token theft), got %s", c.RefreshReuseGrace)
	}
	if c.ResetTokenTTL > 10*time.Minute {
		return bad("LATCH_RESET_TOKEN_TTL", "must be at most 10m, got %s", c.ResetTokenTTL)
	}
	if _, err := ParseByteSize(c.BodyLimit); err != nil {
		return bad("LATCH_BODY_LIMIT", "%v", err)
	}
	if c.Argon2MemoryKiB < 1024 || c.Argon2MemoryKiB > 1024*1024 {
		return bad("LATCH_ARGON2_MEMORY_KIB", "must be between 1024 and 1048576 (1 GiB), got %d", c.Argon2MemoryKiB)
	}
	if c.Argon2Iterations < 1 || c.Argon2Iterations > 64 {
		return bad("LATCH_ARGON2_ITERATIONS", "must be between 1 and 64, got %d", c.Argon2Iterations)
	}
	if c.Argon2Parallelism < 1 || c.Argon2Parallelism > 16 {
		return bad("LATCH_ARGON2_PARALLELISM", "must be between 1 and 16, got %d", c.Argon2Parallelism)
	}
	if c.HashWorker != HashWorkerProcess && c.HashWorker != HashWorkerInline {
		return bad("LATCH_HASH_WORKER", "must be %q or %q, got %q", HashWorkerProcess, HashWorkerInline, c.HashWorker)
	}
	if c.HashConcurrency < 0 {
		return bad("LATCH_HASH_CONCURRENCY", "must be 0 (number of CPUs) or more, got %d", c.HashConcurrency)
	}
	if c.HashQueue < 0 {
		return bad("LATCH_HASH_QUEUE", "must be 0 (8 × concurrency) or more, got %d", c.HashQueue)
	}
	// The import budget stays within the bounds every stored hash must
	// respect (credentials' Max* constants).
	budget := []struct {
		env      string
		v        uint64
		min, max uint64
	}{
		{"LATCH_HASH_IMPORT_MAX_ARGON2_MEMORY_KIB", uint64(c.HashImportMaxArgon2MemoryKiB), 8, 1 << 20},
		{"LATCH_HASH_IMPORT_MAX_ARGON2_ITERATIONS", uint64(c.HashImportMaxArgon2Iterations), 1, 64},
		{"LATCH_HASH_IMPORT_MAX_ARGON2_PARALLELISM", uint64(c.HashImportMaxArgon2Parallelism), 1, 16},
		{"LATCH_HASH_IMPORT_MAX_SCRYPT_MEMORY_KIB", uint64(c.HashImportMaxScryptMemoryKiB), 1, 1 << 20},
		{"LATCH_HASH_IMPORT_MAX_PBKDF2_ITERATIONS", uint64(c.HashImportMaxPBKDF2Iterations), 1, 2000000},
	}
	for _, b := range budget {
		if b.v < b.min || b.v > b.max {
			return bad(b.env, "must be between %d and %d, got %d", b.min, b.max, b.v)
		}
	}
	if c.HashImportMaxBcryptCost < 4 || c.HashImportMaxBcryptCost > 16 {
		return bad("LATCH_HASH_IMPORT_MAX_BCRYPT_COST", "must be between 4 and 16, got %d", c.HashImportMaxBcryptCost)
	}
	if c.PprofAddr != "" {
		host, _, err := net.SplitHostPort(c.PprofAddr)
		if ip := net.ParseIP(host); err != nil || (host != "localhost" && (ip == nil || !ip.IsLoopback())) {
			return bad("LATCH_PPROF_ADDR", "must be a loopback host:port such as 127.0.0.1:6060, got %q", c.PprofAddr)
		}
	}
	if c.IPRateLimit < 0 {
		return bad("LATCH_IP_RATE_LIMIT", "must be 0 (off) or more, got %v", c.IPRateLimit)
	}
	if c.IPRateBurst < 1 {
		return bad("LATCH_IP_RATE_BURST", "must be at least 1, got %d", c.IPRateBurst)
	}
	if c.MetricsAddr != "" {
		if _, _, err := net.SplitHostPort(c.MetricsAddr); err != nil {
			return bad("LATCH_METRICS_ADDR", "must be host:port such as 127.0.0.1:9090, got %q", c.MetricsAddr)
		}
	}
	return c.loadSecretKey(name, generate)
}

// devIssuer is the issuer when none is set: the address people browse.
// A server listening on every interface (0.0.0.0, ::, or just :PORT, as in
// a container) is reached as localhost, not at the wildcard address.
func devIssuer(addr string) string {
	host, port, _ := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// loadSecretKey decodes LATCH_SECRET_KEY, or in development reads/creates
// <data_dir>/secret.key.
func (c *Config) loadSecretKey(name func(string) string, generate bool) error {
	if c.SecretKey != "" {
		key, err := decodeKey(c.SecretKey)
		if err != nil {
			return fmt.Errorf("config: %s: %v", name("LATCH_SECRET_KEY"), err)
		}
		c.SecretKeyBytes = key
		return nil
	}
	if c.Env == EnvProduction {
		return fmt.Errorf("config: LATCH_SECRET_KEY: required in production (generate one with: openssl rand -base64 32)")
	}
	path := filepath.Join(c.DataDir, "secret.key")
	if raw, err := os.ReadFile(path); err == nil {
		if len(strings.TrimSpace(string(raw))) == 0 {
			// Another process created the file (O_EXCL below) and is
			// writing the key into it right now.
			return c.retryReadKey(path)
		}
		key, err := decodeKey(strings.TrimSpace(string(raw)))
		if err != nil {
			return fmt.Errorf("config: %s: %v", path, err)
		}
		c.SecretKeyBytes = key
		return nil
	}
	if !generate {
		return fmt.Errorf("config: LATCH_SECRET_KEY is not set and %s does not exist: nothing to read here yet "+
			"(run `latch migrate` or `latch serve` first, from the directory holding latch-data, or set LATCH_DATA_DIR)", path)
	}
	key, err := GenerateSecretKey()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
		return fmt.Errorf("config: %s: %v", name("LATCH_DATA_DIR"), err)
	}
	// O_EXCL: when two processes start at once, exactly one writes the key
	// and the other reads it back.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if os.IsExist(err) {
			return c.retryReadKey(path)
		}
		return fmt.Errorf("config: write %s: %v", path, err)
	}
	defer f.Close()
	if _, err := f.WriteString(base64.StdEncoding.EncodeToString(key) + "\n"); err != nil {
		return fmt.Errorf("config: write %s: %v", path, err)
	}
	c.SecretKeyBytes = key
	c.SecretKeyGenerated = true
	return nil
}

func (c *Config) retryReadKey(path string) error {
	for i := 0; i < 50; i++ {
		raw, err := os.ReadFile(path)
		if err == nil {
			if key, err := decodeKey(strings.TrimSpace(string(raw))); err == nil {
				c.SecretKeyBytes = key
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("config: %s: unreadable secret key", path)
}

func decodeKey(s string) ([]byte, error) {
	key, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		key, err = base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
	}
	if err != nil {
		return nil, fmt.Errorf("must be base64")
	}
	if len(key) != 32 {
		return nil, fmt.Errorf("must decode to 32 bytes, got %d", len(key))
	}
	return key, nil
}

// ParseByteSize parses sizes like "64K", "1M" or "512".
func ParseByteSize(s string) (int64, error) {
	s = strings.TrimSpace(strings.ToUpper(s))
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "K"):
		mult, s = 1<<10, strings.TrimSuffix(s, "K")
	case strings.HasSuffix(s, "M"):
		mult, s = 1<<20, strings.TrimSuffix(s, "M")
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("must be a size like 64K or 1M")
	}
	return n * mult, nil
}

// BodyLimitBytes returns the parsed body limit.
func (c Config) BodyLimitBytes() int64 {
	n, _ := ParseByteSize(c.BodyLimit)
	return n
}

// GenerateSecretKey returns 32 random bytes suitable for LATCH_SECRET_KEY.
func GenerateSecretKey() ([]byte, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("config: generate secret key: %v", err)
	}
	return key, nil
}
