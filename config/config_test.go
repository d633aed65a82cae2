package config_test

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/latch-dev/latch/config"
)

var testKey = base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))

// env builds a getenv from pairs, with a fixed secret key and a temp data dir
// unless the pairs set them.
func env(t *testing.T, kv map[string]string) func(string) string {
	t.Helper()
	m := map[string]string{"LATCH_DATA_DIR": t.TempDir(), "LATCH_SECRET_KEY": testKey}
	for k, v := range kv {
		m[k] = v
	}
	return func(k string) string { return m[k] }
}

func TestDefaults(t *testing.T) {
	dir := t.TempDir()
	cfg, err := config.Load("", env(t, map[string]string{"LATCH_DATA_DIR": dir}))
	if err != nil {
		t.Fatal(err)
	}
	checks := map[string][2]any{
		"Env":             {cfg.Env, "development"},
		"LogLevel":        {cfg.LogLevel, "info"},
		"Addr":            {cfg.Addr, "127.0.0.1:8080"},
		"Issuer":          {cfg.Issuer, "http://127.0.0.1:8080"},
		"APIResource":     {cfg.APIResource, "http://127.0.0.1:8080/api"},
		"DatabaseURL":     {cfg.DatabaseURL, "sqlite://" + filepath.ToSlash(filepath.Join(dir, "latch.db"))},
		"AutoMigrate":     {cfg.AutoMigrate, true},
		"DBMaxConns":      {cfg.DBMaxConns, 16},
		"SigningAlg":      {cfg.SigningAlg, "ES256"},
		"ClientTokenTTL":  {cfg.ClientTokenTTL, time.Hour},
		"AccessTokenTTL":  {cfg.AccessTokenTTL, time.Hour},
		"RefreshTokenTTL": {cfg.RefreshTokenTTL, 14 * 24 * time.Hour},
		"KeyCacheTTL":     {cfg.KeyCacheTTL, 30 * time.Second},
		"ClientCacheTTL":  {cfg.ClientCacheTTL, 5 * time.Second},
		"RequestTimeout":  {cfg.RequestTimeout, 10 * time.Second},
		// Refresh reuse detection is strict unless a grace is configured.
		"RefreshReuseGrace": {cfg.RefreshReuseGrace, time.Duration(0)},
		"BodyLimit":         {cfg.BodyLimitBytes(), int64(64 << 10)},
		"Argon2MemoryKiB":   {cfg.Argon2MemoryKiB, uint32(19456)},
		"Argon2Iter":        {cfg.Argon2Iterations, uint32(2)},
		"Argon2Par":         {cfg.Argon2Parallelism, uint8(1)},
		"ImportArgon2Mem":   {cfg.HashImportMaxArgon2MemoryKiB, uint32(65536)},
		"ImportArgon2T":     {cfg.HashImportMaxArgon2Iterations, uint32(10)},
		"ImportArgon2P":     {cfg.HashImportMaxArgon2Parallelism, uint8(4)},
		"ImportBcrypt":      {cfg.HashImportMaxBcryptCost, 14},
		"ImportScryptMem":   {cfg.HashImportMaxScryptMemoryKiB, uint32(131072)},
		"ImportPBKDF2":      {cfg.HashImportMaxPBKDF2Iterations, uint32(1000000)},
		"SecretKeyBytes":    {len(cfg.SecretKeyBytes), 32},
	}
	for name, c := range checks {
		if !reflect.DeepEqual(c[0], c[1]) {
			t.Errorf("%s = %#v, want %#v", name, c[0], c[1])
		}
	}
	// The default data dir is ./latch-data (not created by a test run here).
	if d := config.Default().DataDir; d != "./latch-data" {
		t.Errorf("default data dir %q", d)
	}
}

func TestFileAndEnvironmentPrecedence(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "latch.yaml")
	yaml := `
addr: 0.0.0.0:9000
issuer: https://auth.example.com/
log_level: debug
client_token_ttl: 30m
signing_alg: RS256
db_max_conns: 4
body_limit: 1M
argon2_memory_kib: 65536
ip_rate_limit: 2.5
auto_migrate: false
`
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path, env(t, map[string]string{
		"LATCH_CLIENT_TOKEN_TTL": "15m", // env wins over the file
		"LATCH_DB_MAX_CONNS":     " 8 ", // trimmed
		"LATCH_LOG_LEVEL":        "",    // empty means unset: the file's value stays
	}))
	if err != nil {
		t.Fatal(err)
	}
	checks := map[string][2]any{
		"Addr (file)":              {cfg.Addr, "0.0.0.0:9000"},
		"Issuer (file, no /)":      {cfg.Issuer, "https://auth.example.com"},
		"APIResource (derived)":    {cfg.APIResource, "https://auth.example.com/api"},
		"LogLevel (file)":          {cfg.LogLevel, "debug"},
		"ClientTokenTTL (env)":     {cfg.ClientTokenTTL, 15 * time.Minute},
		"SigningAlg (file)":        {cfg.SigningAlg, "RS256"},
		"DBMaxConns (env)":         {cfg.DBMaxConns, 8},
		"BodyLimit (file)":         {cfg.BodyLimitBytes(), int64(1 << 20)},
		"Argon2 memory (file)":     {cfg.Argon2MemoryKiB, uint32(65536)},
		"IPRateLimit (file)":       {cfg.IPRateLimit, 2.5},
		"AutoMigrate (file)":       {cfg.AutoMigrate, false},
		"AccessTokenTTL (default)": {cfg.AccessTokenTTL, time.Hour},
	}
	for name, c := range checks {
		if !reflect.DeepEqual(c[0], c[1]) {
			t.Errorf("%s = %#v, want %#v", name, c[0], c[1])
		}
	}

	// An empty file is fine; an unknown key or a bad value in the file is not.
	empty := filepath.Join(dir, "empty.yaml")
	os.WriteFile(empty, nil, 0o600)
	if _, err := config.Load(empty, env(t, nil)); err != nil {
		t.Errorf("empty file: %v", err)
	}
	for name, content := range map[string]string{
		"unknown key":  "adress: 1.2.3.4:5\n",
		"bad duration": "client_token_ttl: soon\n",
		"bad yaml":     "addr: [\n",
	} {
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+".yaml")
		os.WriteFile(p, []byte(content), 0o600)
		if _, err := config.Load(p, env(t, nil)); err == nil || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: err %v, want an error naming the file", name, err)
		}
	}
	if _, err := config.Load(filepath.Join(dir, "missing.yaml"), env(t, nil)); err == nil {
		t.Error("a missing config file must fail")
	}
	// A file value that fails validation is reported under its YAML key
	// (issue 14: it used to name the variable the operator never set).
	bad := filepath.Join(dir, "badalg.yaml")
	os.WriteFile(bad, []byte("signing_alg: HS256\n"), 0o600)
	if _, err := config.Load(bad, env(t, nil)); err == nil || err.Error() != "config: "+bad+`: signing_alg: must be ES256 or RS256, got "HS256"` {
		t.Errorf("bad file value: %v", err)
	}
}

// A bad value reads the same whether it came from the file or the
// environment; only the name differs: the YAML key, or the variable.
func TestFileErrorsNameTheKeyInTheEnvironmentsWords(t *testing.T) {
	dir := t.TempDir()
	cases := []struct{ key, env, value string }{
		{"client_token_ttl", "LATCH_CLIENT_TOKEN_TTL", "soon"},        // parse error
		{"client_token_ttl", "LATCH_CLIENT_TOKEN_TTL", "10s"},         // validation error
		{"auto_migrate", "LATCH_AUTO_MIGRATE", "maybe"},               // parse error
		{"argon2_parallelism", "LATCH_ARGON2_PARALLELISM", "300"},     // does not fit
		{"log_level", "LATCH_LOG_LEVEL", "loud"},                      // validation error
		{"metrics_addr", "LATCH_METRICS_ADDR", "9090"},                // new setting
		{"db_max_conns", "LATCH_DB_MAX_CONNS", "0"},                   // validation error
		{"webauthn_origins", "LATCH_WEBAUTHN_ORIGINS", "not a url/x"}, // list check
		{"hash_import_max_bcrypt_cost", "LATCH_HASH_IMPORT_MAX_BCRYPT_COST", "20"},
	}
	for _, c := range cases {
		p := filepath.Join(dir, c.key+".yaml")
		os.WriteFile(p, []byte(c.key+": "+c.value+"\n"), 0o600)
		_, fileErr := config.Load(p, env(t, map[string]string{"LATCH_DATA_DIR": dir}))
		_, envErr := config.Load("", env(t, map[string]string{"LATCH_DATA_DIR": dir, c.env: c.value}))
		if fileErr == nil || envErr == nil {
			t.Errorf("%s=%s: file err %v, env err %v; want both", c.key, c.value, fileErr, envErr)
			continue
		}
		fromFile := strings.TrimPrefix(fileErr.Error(), "config: "+p+": "+c.key+": ")
		fromEnv := strings.TrimPrefix(envErr.Error(), "config: "+c.env+": ")
		if fromFile == fileErr.Error() || fromEnv == envErr.Error() || fromFile != fromEnv {
			t.Errorf("%s=%s:\n file: %v\n env:  %v", c.key, c.value, fileErr, envErr)
		}
	}
	// The environment still wins, and then it is the one named.
	p := filepath.Join(dir, "log_level.yaml")
	_, err := config.Load(p, env(t, map[string]string{"LATCH_DATA_DIR": dir, "LATCH_LOG_LEVEL": "shout"}))
	if err == nil || !strings.HasPrefix(err.Error(), "config: LATCH_LOG_LEVEL: ") {
		t.Errorf("env over file: %v", err)
	}
	// An unknown key is named with its line.
	p = filepath.Join(dir, "typo.yaml")
	os.WriteFile(p, []byte("env: development\nadress: 1.2.3.4:5\n"), 0o600)
	if _, err := config.Load(p, env(t, nil)); err == nil || err.Error() != "config: "+p+`: line 2: unknown setting "adress"` {
		t.Errorf("unknown key: %v", err)
	}
}

// Without an issuer, development derives it from the address people
// browse: a wildcard listener is reached as localhost.
func TestDevelopmentIssuerIsTheBrowsedAddress(t *testing.T) {
	dir := t.TempDir()
	for addr, want := range map[string]string{
		"127.0.0.1:8080": "http://127.0.0.1:8080",
		"0.0.0.0:8080":   "http://localhost:8080",
		":8080":          "http://localhost:8080",
		"[::]:9000":      "http://localhost:9000",
		"10.1.2.3:80":    "http://10.1.2.3:80",
		"auth.lan:8080":  "http://auth.lan:8080",
	} {
		cfg, err := config.Load("", env(t, map[string]string{"LATCH_DATA_DIR": dir, "LATCH_ADDR": addr}))
		if err != nil {
			t.Errorf("%s: %v", addr, err)
			continue
		}
		if cfg.Issuer != want || cfg.APIResource != want+"/api" {
			t.Errorf("LATCH_ADDR=%s: issuer %q, api %q; want %q", addr, cfg.Issuer, cfg.APIResource, want)
		}
	}
}

func TestUnknownVariables(t *testing.T) {
	got := config.UnknownVariables([]string{"LATCH_ADDR=:1", "LATCH_ADRR=:1", "LATCH_TEST_POSTGRES_DSN=x",
		"PATH=/bin", "LATCH_METRICS_ADDR=x", "LATCH_LOGLEVEL=debug"})
	if !reflect.DeepEqual(got, []string{"LATCH_ADRR", "LATCH_LOGLEVEL"}) {
		t.Errorf("unknown = %v", got)
	}
}

// LoadExisting (read-only commands) never writes a key.
func TestLoadExistingCreatesNothing(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	noKey := func(k string) string {
		return map[string]string{"LATCH_DATA_DIR": dir}[k]
	}
	_, err := config.LoadExisting("", noKey)
	if err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("err = %v", err)
	}
	if _, statErr := os.Stat(dir); !os.IsNotExist(statErr) {
		t.Errorf("LoadExisting created %s (%v)", dir, statErr)
	}
	if _, err := config.Load("", noKey); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.LoadExisting("", noKey)
	if err != nil || len(cfg.SecretKeyBytes) != 32 || cfg.SecretKeyGenerated {
		t.Errorf("existing key: %v %d %v", err, len(cfg.SecretKeyBytes), cfg.SecretKeyGenerated)
	}
}

func TestBadValuesNameTheirVariable(t *testing.T) {
	cases := []struct {
		env  string
		val  string
		also map[string]string
	}{
		{"LATCH_ENV", "staging", nil},
		{"LATCH_LOG_LEVEL", "verbose", nil},
		{"LATCH_ADDR", "8080", nil},
		{"LATCH_ADDR", "localhost", nil},
		{"LATCH_ISSUER", "ftp://example.com", nil},
		{"LATCH_ISSUER", "https://example.com/?a=b", nil},
		{"LATCH_ISSUER", "not a url", nil},
		{"LATCH_ISSUER", "http://auth.example.com", map[string]string{"LATCH_ENV": "production"}},
		{"LATCH_API_RESOURCE", "relative/path", nil},
		{"LATCH_API_RESOURCE", "https://api.example.com/#frag", nil},
		{"LATCH_DATABASE_URL", "mysql://localhost/latch", nil},
		{"LATCH_DATABASE_URL", "/var/lib/latch.db", nil},
		{"LATCH_AUTO_MIGRATE", "sometimes", nil},
		{"LATCH_DB_MAX_CONNS", "0", nil},
		{"LATCH_DB_MAX_CONNS", "many", nil},
		{"LATCH_SECRET_KEY", "tooshort", nil},
		{"LATCH_SECRET_KEY", base64.StdEncoding.EncodeToString(make([]byte, 16)), nil},
		{"LATCH_SECRET_KEY", "!!!not base64!!!", nil},
		{"LATCH_SIGNING_ALG", "HS256", nil},
		{"LATCH_SIGNING_ALG", "none", nil},
		{"LATCH_KEY_ROTATION_INTERVAL", "5m", nil},
		{"LATCH_KEY_ROTATION_INTERVAL", "90", nil},
		{"LATCH_KEY_CACHE_TTL", "-1s", nil},
		{"LATCH_HOUSEKEEPING_INTERVAL", "10ms", nil},
		{"LATCH_HOUSEKEEPING_INTERVAL", "0s", nil},
		{"LATCH_CLIENT_CACHE_TTL", "fast", nil},
		{"LATCH_CLIENT_TOKEN_TTL", "10s", nil},
		{"LATCH_ACCESS_TOKEN_TTL", "1", nil},
		{"LATCH_ID_TOKEN_TTL", "0s", nil},
		{"LATCH_REFRESH_TOKEN_TTL", "30s", nil},
		{"LATCH_SESSION_TTL", "1s", nil},
		{"LATCH_PENDING_SESSION_TTL", "0s", nil},
		{"LATCH_RESET_TOKEN_TTL", "1h", nil},
		{"LATCH_READ_TIMEOUT", "1ms", nil},
		{"LATCH_WRITE_TIMEOUT", "0s", nil},
		{"LATCH_REQUEST_TIMEOUT", "10ms", nil},
		{"LATCH_REQUEST_TIMEOUT", "30s", nil}, // not shorter than the write timeout
		{"LATCH_REQUEST_TIMEOUT", "5s", map[string]string{"LATCH_WRITE_TIMEOUT": "5s"}},
		{"LATCH_SHUTDOWN_TIMEOUT", "-1s", nil},
		{"LATCH_BODY_LIMIT", "lots", nil},
		{"LATCH_BODY_LIMIT", "0", nil},
		{"LATCH_BODY_LIMIT", "-5K", nil},
		{"LATCH_TRUST_PROXY", "yes please", nil},
		{"LATCH_ARGON2_MEMORY_KIB", "512", nil},
		{"LATCH_ARGON2_MEMORY_KIB", "-1", nil},
		{"LATCH_ARGON2_ITERATIONS", "0", nil},
		{"LATCH_ARGON2_PARALLELISM", "0", nil},
		{"LATCH_ARGON2_PARALLELISM", "300", nil},
		{"LATCH_HASH_CONCURRENCY", "-1", nil},
		{"LATCH_HASH_QUEUE", "-1", nil},
		{"LATCH_HASH_QUEUE_WAIT", "-1s", nil},
		{"LATCH_HASH_IMPORT_MAX_ARGON2_MEMORY_KIB", "0", nil},
		{"LATCH_HASH_IMPORT_MAX_ARGON2_MEMORY_KIB", "1048577", nil},
		{"LATCH_HASH_IMPORT_MAX_ARGON2_ITERATIONS", "65", nil},
		{"LATCH_HASH_IMPORT_MAX_ARGON2_PARALLELISM", "17", nil},
		{"LATCH_HASH_IMPORT_MAX_BCRYPT_COST", "3", nil},
		{"LATCH_HASH_IMPORT_MAX_BCRYPT_COST", "17", nil},
		{"LATCH_HASH_IMPORT_MAX_SCRYPT_MEMORY_KIB", "0", nil},
		{"LATCH_HASH_IMPORT_MAX_SCRYPT_MEMORY_KIB", "2097152", nil},
		{"LATCH_HASH_IMPORT_MAX_PBKDF2_ITERATIONS", "0", nil},
		{"LATCH_HASH_IMPORT_MAX_PBKDF2_ITERATIONS", "2000001", nil},
		{"LATCH_IP_RATE_LIMIT", "-1", nil},
		{"LATCH_IP_RATE_LIMIT", "ten", nil},
		{"LATCH_IP_RATE_BURST", "0", nil},
	}
	for _, tc := range cases {
		t.Run(tc.env+"="+tc.val, func(t *testing.T) {
			kv := map[string]string{tc.env: tc.val}
			for k, v := range tc.also {
				kv[k] = v
			}
			_, err := config.Load("", env(t, kv))
			if err == nil {
				t.Fatalf("%s=%q was accepted", tc.env, tc.val)
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.env+":") {
				t.Fatalf("error %q does not name %s", msg, tc.env)
			}
			if strings.Contains(msg, "\n") {
				t.Fatalf("error spans several lines: %q", msg)
			}
			if tc.env == "LATCH_SECRET_KEY" && strings.Contains(msg, tc.val) {
				t.Fatalf("the error echoes the secret key: %q", msg)
			}
		})
	}
}

// Every setting in the Config struct can be set from its LATCH_* variable
// (guards against a field without an env tag or a type applyEnv misses).
func TestEverySettingHasAVariable(t *testing.T) {
	typ := reflect.TypeOf(config.Config{})
	for i := 0; i < typ.NumField(); i++ {
		f := typ.Field(i)
		if f.Tag.Get("yaml") == "-" {
			continue
		}
		name := f.Tag.Get("env")
		if !strings.HasPrefix(name, "LATCH_") {
			t.Errorf("field %s has no LATCH_* env tag", f.Name)
		}
	}
}

func TestProductionRequiresASecretKey(t *testing.T) {
	dir := t.TempDir()
	_, err := config.Load("", func(k string) string {
		return map[string]string{"LATCH_ENV": "production", "LATCH_ISSUER": "https://auth.example.com", "LATCH_DATA_DIR": dir}[k]
	})
	if err == nil || !strings.Contains(err.Error(), "LATCH_SECRET_KEY") || !strings.Contains(err.Error(), "production") {
		t.Fatalf("production without a secret key: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("production generated files in the data dir: %v", entries)
	}
	cfg, err := config.Load("", func(k string) string {
		return map[string]string{"LATCH_ENV": "production", "LATCH_ISSUER": "https://auth.example.com",
			"LATCH_DATA_DIR": dir, "LATCH_SECRET_KEY": testKey}[k]
	})
	if err != nil || cfg.SecretKeyGenerated || string(cfg.SecretKeyBytes) != "0123456789abcdef0123456789abcdef" {
		t.Fatalf("production with a key: %v %+v", err, cfg.SecretKeyGenerated)
	}
	// URL-safe base64 without padding is accepted too.
	raw := base64.RawURLEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	if cfg, err := config.Load("", env(t, map[string]string{"LATCH_SECRET_KEY": raw})); err != nil || len(cfg.SecretKeyBytes) != 32 {
		t.Fatalf("url-safe key: %v", err)
	}
}

func TestDevelopmentGeneratesAndReusesTheSecretKey(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nested", "data")
	getenv := func(k string) string { return map[string]string{"LATCH_DATA_DIR": dir}[k] }
	first, err := config.Load("", getenv)
	if err != nil {
		t.Fatal(err)
	}
	if !first.SecretKeyGenerated || len(first.SecretKeyBytes) != 32 {
		t.Fatalf("first start: generated=%v len=%d", first.SecretKeyGenerated, len(first.SecretKeyBytes))
	}
	path := filepath.Join(dir, "secret.key")
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := st.Mode().Perm(); perm != 0o600 {
		t.Fatalf("secret.key mode %o, want 600", perm)
	}
	content, _ := os.ReadFile(path)
	if got, _ := base64.StdEncoding.DecodeString(strings.TrimSpace(string(content))); string(got) != string(first.SecretKeyBytes) {
		t.Fatal("secret.key does not hold the key in use")
	}
	second, err := config.Load("", getenv)
	if err != nil {
		t.Fatal(err)
	}
	if second.SecretKeyGenerated || string(second.SecretKeyBytes) != string(first.SecretKeyBytes) {
		t.Fatal("the second start did not reuse the generated key")
	}
	// An explicit key wins over the file.
	explicit, err := config.Load("", func(k string) string {
		return map[string]string{"LATCH_DATA_DIR": dir, "LATCH_SECRET_KEY": testKey}[k]
	})
	if err != nil || string(explicit.SecretKeyBytes) != "0123456789abcdef0123456789abcdef" {
		t.Fatalf("explicit key: %v", err)
	}
	// A corrupt key file is an error, not silently replaced.
	os.WriteFile(path, []byte("garbage\n"), 0o600)
	if _, err := config.Load("", getenv); err == nil || !strings.Contains(err.Error(), "secret.key") {
		t.Fatalf("corrupt key file: %v", err)
	}
}

// Two processes starting at once on a fresh data dir agree on one key.
func TestConcurrentFirstStartsShareOneKey(t *testing.T) {
	dir := t.TempDir()
	getenv := func(k string) string { return map[string]string{"LATCH_DATA_DIR": dir}[k] }
	const n = 8
	keys := make([][]byte, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			cfg, err := config.Load("", getenv)
			keys[i], errs[i] = cfg.SecretKeyBytes, err
		}(i)
	}
	wg.Wait()
	for i := 0; i < n; i++ {
		if errs[i] != nil {
			t.Fatalf("load %d: %v", i, errs[i])
		}
		if string(keys[i]) != string(keys[0]) {
			t.Fatalf("load %d got a different key", i)
		}
	}
}

func TestParseByteSize(t *testing.T) {
	for in, want := range map[string]int64{"512": 512, "64K": 64 << 10, "64k": 64 << 10, "1M": 1 << 20, " 2m ": 2 << 20} {
		if got, err := config.ParseByteSize(in); err != nil || got != want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "K", "1G", "1.5M", "0", "-1"} {
		if _, err := config.ParseByteSize(in); err == nil {
			t.Errorf("ParseByteSize(%q) accepted", in)
		}
	}
}
