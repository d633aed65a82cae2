package token

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"gorm.io/gorm"

	"github.com/latch-dev/latch/credentials"
	"github.com/latch-dev/latch/store"
)

// Key states. Exactly one key is active (it signs); one is next (published
// ahead of use so verifiers that cache JWKS already know it when it becomes
// active); retired keys stay published while tokens they signed may live.
const (
	KeyNext    = "next"
	KeyActive  = "active"
	KeyRetired = "retired"
)

// signingKeyRow is the signing_keys table.
type signingKeyRow struct {
	Kid         string `gorm:"primaryKey"`
	Alg         string
	State       string
	PrivateKey  []byte // sealed PKCS#8 DER
	PublicJWK   string `gorm:"column:public_jwk"`
	CreatedAt   time.Time
	ActivatedAt *time.Time
	RetiredAt   *time.Time
}

func (signingKeyRow) TableName() string { return "signing_keys" }

// KeyInfo describes a key for listings (never the private part).
type KeyInfo struct {
	Kid         string     `json:"kid"`
	Alg         string     `json:"alg"`
	State       string     `json:"state"`
	Published   bool       `json:"published"`
	CreatedAt   time.Time  `json:"created_at"`
	ActivatedAt *time.Time `json:"activated_at,omitempty"`
	RetiredAt   *time.Time `json:"retired_at,omitempty"`
}

// signingKey is a loaded key.
type signingKey struct {
	kid     string
	alg     string
	private crypto.Signer
	public  crypto.PublicKey
}

// keySet is an immutable snapshot of the published keys.
type keySet struct {
	active   *signingKey
	byKid    map[string]*signingKey
	jwks     []byte
	loadedAt time.Time // when the load that read it began
	seq      uint64    // which load read it (see KeyRing.loads)
}

// keyLoad is one read of the key set from the database, which every caller
// that needs a fresh set while it runs shares.
type keyLoad struct {
	seq  uint64
	done chan struct{}
	set  *keySet // valid after done
	err  error
}

// missInterval is the least time between two loads of the key set caused by
// tokens with an unknown kid: such tokens are cheap to make up, and must not
// become database load.
const missInterval = time.Second

// loadTimeout bounds one load of the key set. A load runs on its own (shared
// by every waiting request), so no single request's end cancels it.
const loadTimeout = 10 * time.Second

// KeyRing loads signing keys from the database, caches them for a short TTL
// (so replicas converge after a rotation elsewhere) and rotates them.
type KeyRing struct {
	db            *store.DB
	sealer        *credentials.Sealer
	alg           string
	cacheTTL      time.Duration
	publishWindow time.Duration
	now           func() time.Time
	audit         AuditSink
	missInterval  time.Duration

	current atomic.Pointer[keySet]

	mu       sync.Mutex // guards the fields below
	loads    uint64     // loads started so far; a load's seq is its rank
	inflight *keyLoad   // the load running now, if any
	lastMiss time.Time  // when the last load caused by an unknown kid began
}

// KeyRingOptions configure a KeyRing.
type KeyRingOptions struct {
	Alg      string        // ES256 or RS256, for new keys
	CacheTTL time.Duration // how long a loaded key set is trusted
	// PublishWindow is how long a retired key stays in JWKS: at least the
	// longest lifetime of a token it may have signed, plus leeway.
	PublishWindow time.Duration
	// Audit receives every rotation (nil: not audited).
	Audit AuditSink
}

// NewKeyRing returns a KeyRing. Call Ensure before use.
func NewKeyRing(db *store.DB, sealer *credentials.Sealer, opts KeyRingOptions) *KeyRing {
	return &KeyRing{db: db, sealer: sealer, alg: opts.Alg, cacheTTL: opts.CacheTTL,
		publishWindow: opts.PublishWindow, now: func() time.Time { return time.Now().UTC() }, audit: opts.Audit,
		missInterval: missInterval}
}

// lockKeys serialises key management across processes.
func (r *KeyRing) lockKeys(tx *gorm.DB) error {
	if r.db.Dialect == store.Postgres {
		return tx.Exec("SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.latch_signing_keys'))").Error
	}
	return nil // SQLite: the immediate transaction holds the write lock
}

// Ensure creates an active and a next key when missing. Safe to run from
// several processes at once.
func (r *KeyRing) Ensure(ctx context.Context) error {
	err := r.db.Tx(ctx, func(tx *gorm.DB) error {
		if err := r.lockKeys(tx); err != nil {
			return err
		}
		var rows []signingKeyRow
		if err := tx.Where("state IN ?", []string{KeyActive, KeyNext}).Find(&rows).Error; err != nil {
			return err
		}
		var hasActive, hasNext bool
		for _, k := range rows {
			hasActive = hasActive || k.State == KeyActive
			hasNext = hasNext || k.State == KeyNext
		}
		now := r.now()
		if !hasActive {
			if _, err := r.insertKey(tx, KeyActive, &now); err != nil {
				return err
			}
		}
		if !hasNext {
			if _, err := r.insertKey(tx, KeyNext, nil); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("token: ensure signing keys: %w", err)
	}
	_, err = r.reloadNow(ctx)
	return err
}

// Rotate makes the next key active, retires the active one and publishes a
// fresh next key. When olderThan > 0 it only rotates if the active key has
// been active that long (used by the scheduler, so replicas do not rotate
// twice). It reports whether a rotation happened; every rotation is audited
// (trigger "manual", or "scheduled" when olderThan > 0).
func (r *KeyRing) Rotate(ctx context.Context, olderThan time.Duration) (bool, error) {
	rotated := false
	var retiredKid, activeKid string
	err := r.db.Tx(ctx, func(tx *gorm.DB) error {
		retiredKid, activeKid = "", ""
		if err := r.lockKeys(tx); err != nil {
			return err
		}
		var rows []signingKeyRow
		if err := tx.Where("state IN ?", []string{KeyActive, KeyNext}).Order("created_at").Find(&rows).Error; err != nil {
			return err
		}
		now := r.now()
		var active, next *signingKeyRow
		for i := range rows {
			switch rows[i].State {
			case KeyActive:
				active = &rows[i]
			case KeyNext:
				if next == nil || next.Alg != r.alg {
					next = &rows[i]
				}
			}
		}
		if olderThan > 0 && active != nil && active.ActivatedAt != nil && now.Sub(*active.ActivatedAt) < olderThan {
			return nil
		}
		if active != nil {
			retiredKid = active.Kid
			if err := tx.Model(&signingKeyRow{}).Where("kid = ?", active.Kid).
				Updates(map[string]any{"state": KeyRetired, "retired_at": now}).Error; err != nil {
				return err
			}
		}
		if next != nil && next.Alg == r.alg {
			if err := tx.Model(&signingKeyRow{}).Where("kid = ?", next.Kid).
				Updates(map[string]any{"state": KeyActive, "activated_at": now}).Error; err != nil {
				return err
			}
			activeKid = next.Kid
		} else {
			if next != nil { // the configured algorithm changed: never activate a key of the old one
				if err := tx.Model(&signingKeyRow{}).Where("kid = ?", next.Kid).
					Updates(map[string]any{"state": KeyRetired, "retired_at": now}).Error; err != nil {
					return err
				}
			}
			kid, err := r.insertKey(tx, KeyActive, &now)
			if err != nil {
				return err
			}
			activeKid = kid
		}
		rotated = true
		_, err := r.insertKey(tx, KeyNext, nil)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("token: rotate signing keys: %w", err)
	}
	if rotated {
		trigger := "manual"
		if olderThan > 0 {
			trigger = "scheduled"
		}
		audit(ctx, r.audit, AuditEvent{Event: EventKeyRotated, Data: map[string]any{
			"trigger": trigger, "active_kid": activeKid, "retired_kid": retiredKid, "alg": r.alg}})
		if _, err := r.reloadNow(ctx); err != nil {
			return true, err
		}
	}
	return rotated, nil
}

// RunRotation rotates keys every interval until ctx ends. Every replica may
// run it: the age check inside the locked transaction makes it rotate once.
func (r *KeyRing) RunRotation(ctx context.Context, interval time.Duration, onErr func(error)) {
	if interval <= 0 {
		return
	}
	tick := interval / 24
	if tick > time.Hour {
		tick = time.Hour
	}
	if tick < time.Minute {
		tick = time.Minute
	}
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := r.Rotate(ctx, interval); err != nil && onErr != nil {
				onErr(err)
			}
		}
	}
}

// insertKey generates and stores a key and returns its kid.
func (r *KeyRing) insertKey(tx *gorm.DB, state string, activatedAt *time.Time) (string, error) {
	row, err := r.generate(state, activatedAt)
	if err != nil {
		return "", err
	}
	return row.Kid, tx.Create(row).Error
}

// generate creates a key of the configured algorithm.
func (r *KeyRing) generate(state string, activatedAt *time.Time) (*signingKeyRow, error) {
	var priv crypto.Signer
	var err error
	switch r.alg {
	case "ES256":
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "RS256":
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	default:
		return nil, fmt.Errorf("token: unsupported signing algorithm %q", r.alg)
	}
	if err != nil {
		return nil, err
	}
	pub, err := jwk.FromRaw(priv.Public())
	if err != nil {
		return nil, err
	}
	tp, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, err
	}
	kid := base64.RawURLEncoding.EncodeToString(tp)
	_ = pub.Set(jwk.KeyIDKey, kid)
	_ = pub.Set(jwk.AlgorithmKey, jwa.SignatureAlgorithm(r.alg))
	_ = pub.Set(jwk.KeyUsageKey, jwk.ForSignature)
	pubJSON, err := json.Marshal(pub)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, err
	}
	sealed, err := r.sealer.Seal(der, []byte("signing_key:"+kid))
	if err != nil {
		return nil, err
	}
	return &signingKeyRow{Kid: kid, Alg: r.alg, State: state, PrivateKey: sealed, PublicJWK: string(pubJSON),
		CreatedAt: r.now(), ActivatedAt: activatedAt}, nil
}

// published reports whether a key belongs in JWKS at time now.
func (r *KeyRing) published(k signingKeyRow, now time.Time) bool {
	if k.State != KeyRetired {
		return true
	}
	return k.RetiredAt != nil && now.Sub(*k.RetiredAt) < r.publishWindow
}

// read reads the published keys from the database.
func (r *KeyRing) read(ctx context.Context, seq uint64) (*keySet, error) {
	now := r.now()
	var rows []signingKeyRow
	if err := r.db.WithContext(ctx).Order("created_at DESC").Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("token: load signing keys: %w", err)
	}
	set := &keySet{byKid: map[string]*signingKey{}, loadedAt: now, seq: seq}
	jwks := jwk.NewSet()
	for _, row := range rows {
		if !r.published(row, now) {
			continue
		}
		der, err := r.sealer.Open(row.PrivateKey, []byte("signing_key:"+row.Kid))
		if err != nil {
			return nil, fmt.Errorf("token: signing key %s: %w", row.Kid, err)
		}
		parsed, err := x509.ParsePKCS8PrivateKey(der)
		if err != nil {
			return nil, fmt.Errorf("token: signing key %s: %w", row.Kid, err)
		}
		signer, ok := parsed.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("token: signing key %s is not a signer", row.Kid)
		}
		k := &signingKey{kid: row.Kid, alg: row.Alg, private: signer, public: signer.Public()}
		set.byKid[row.Kid] = k
		if row.State == KeyActive {
			set.active = k
		}
		pub, err := jwk.ParseKey([]byte(row.PublicJWK))
		if err != nil {
			return nil, fmt.Errorf("token: signing key %s: %w", row.Kid, err)
		}
		if err := jwks.AddKey(pub); err != nil {
			return nil, err
		}
	}
	if set.active == nil {
		return nil, errors.New("token: no active signing key (run `latch keys rotate` or restart to create one)")
	}
	raw, err := json.Marshal(jwks)
	if err != nil {
		return nil, err
	}
	set.jwks = raw
	return set, nil
}

// startLoad begins a load of the key set. r.mu must be held, and no load be
// in flight.
func (r *KeyRing) startLoad(ctx context.Context) *keyLoad {
	r.loads++
	c := &keyLoad{seq: r.loads, done: make(chan struct{})}
	r.inflight = c
	go func() {
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), loadTimeout)
		set, err := r.read(lctx, c.seq)
		cancel()
		r.mu.Lock()
		if err == nil {
			r.current.Store(set) // loads never overlap: this is the newest
		}
		r.inflight = nil
		c.set, c.err = set, err
		r.mu.Unlock()
		close(c.done)
	}()
	return c
}

// loadAfter returns a key set read by a load that began after the first
// `after` loads: it joins such a load if one is running, waits for an older
// one to end before starting its own, and returns at once if such a set is
// already cached.
func (r *KeyRing) loadAfter(ctx context.Context, after uint64) (*keySet, error) {
	for {
		r.mu.Lock()
		if cur := r.current.Load(); cur != nil && cur.seq > after {
			r.mu.Unlock()
			return cur, nil
		}
		c := r.inflight
		if c == nil {
			c = r.startLoad(ctx)
		}
		r.mu.Unlock()
		select {
		case <-c.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if c.seq > after {
			return c.set, c.err
		}
	}
}

// reloadNow returns a key set read after this call began: what a process
// that just changed the keys must see.
func (r *KeyRing) reloadNow(ctx context.Context) (*keySet, error) {
	r.mu.Lock()
	after := r.loads
	r.mu.Unlock()
	return r.loadAfter(ctx, after)
}

// Loads reports how many times this ring has begun reading the key set from
// the database (for tests and diagnostics).
func (r *KeyRing) Loads() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.loads
}

// snapshot returns the cached key set, reloading it when stale. Concurrent
// callers that find it stale share one load.
func (r *KeyRing) snapshot(ctx context.Context) (*keySet, error) {
	set := r.current.Load()
	if set != nil && r.now().Sub(set.loadedAt) < r.cacheTTL {
		return set, nil
	}
	var after uint64
	if set != nil {
		after = set.seq
	}
	fresh, err := r.loadAfter(ctx, after)
	if err != nil {
		if set != nil {
			return set, nil // keep serving with the last good keys if the DB blips
		}
		return nil, err
	}
	return fresh, nil
}

// lookup finds a published key by kid. A kid this process has not loaded
// may be one another process rotated in since its last load: that triggers
// one load, which every request missing a key meanwhile shares, and then the
// kid is looked up again. Loads caused by misses start at most once per
// missInterval, so made-up kids cannot become database load; a miss inside
// the interval waits for the next permitted load rather than fail — two
// rotations in quick succession each bring a kid this process has not seen.
func (r *KeyRing) lookup(ctx context.Context, kid string) (*signingKey, error) {
	set, err := r.snapshot(ctx)
	if err != nil {
		return nil, err
	}
	if k, ok := set.byKid[kid]; ok {
		return k, nil
	}
	if kid == "" {
		return nil, errUnknownKey // Latch names the key of every token it signs
	}
	r.mu.Lock()
	after := r.loads // the key existed before this request: a load begun from now on sees it
	r.mu.Unlock()
	for {
		r.mu.Lock()
		if cur := r.current.Load(); cur != nil && cur.seq > after {
			r.mu.Unlock()
			return cur.key(kid)
		}
		c := r.inflight
		var wait time.Duration
		if c == nil {
			if wait = r.missInterval - time.Since(r.lastMiss); wait <= 0 {
				r.lastMiss = time.Now()
				c = r.startLoad(ctx)
			}
		}
		r.mu.Unlock()
		if c == nil {
			select {
			case <-time.After(wait):
				continue
			case <-ctx.Done():
				return nil, errUnknownKey
			}
		}
		select {
		case <-c.done:
		case <-ctx.Done():
			return nil, errUnknownKey
		}
		if c.err == nil {
			if k, err := c.set.key(kid); err == nil {
				return k, nil // even a load begun before the miss may have it
			}
		}
		if c.seq > after {
			return nil, errUnknownKey // loaded after the miss, and still unknown
		}
	}
}

// key returns the set's key named kid.
func (s *keySet) key(kid string) (*signingKey, error) {
	if k, ok := s.byKid[kid]; ok {
		return k, nil
	}
	return nil, errUnknownKey
}

var errUnknownKey = errors.New("token: unknown signing key")

// JWKS returns the JSON Web Key Set of the published keys.
func (r *KeyRing) JWKS(ctx context.Context) ([]byte, error) {
	set, err := r.snapshot(ctx)
	if err != nil {
		return nil, err
	}
	return set.jwks, nil
}

// Algorithms lists the algorithms of the published keys.
func (r *KeyRing) Algorithms(ctx context.Context) []string {
	set, err := r.snapshot(ctx)
	if err != nil {
		return []string{r.alg}
	}
	seen := map[string]bool{}
	var out []string
	for _, k := range set.byKid {
		if !seen[k.alg] {
			seen[k.alg] = true
			out = append(out, k.alg)
		}
	}
	sort.Strings(out)
	return out
}

// List returns every key in the database, newest first.
func (r *KeyRing) List(ctx context.Context) ([]KeyInfo, error) {
	var rows []signingKeyRow
	if err := r.db.WithContext(ctx).Order("created_at DESC").Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("token: list signing keys: %w", err)
	}
	now := r.now()
	out := make([]KeyInfo, 0, len(rows))
	for _, row := range rows {
		out = append(out, KeyInfo{Kid: row.Kid, Alg: row.Alg, State: row.State, Published: r.published(row, now),
			CreatedAt: row.CreatedAt, ActivatedAt: row.ActivatedAt, RetiredAt: row.RetiredAt})
	}
	return out, nil
}
