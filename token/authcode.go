package token

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"gorm.io/gorm"

	"github.com/latch-dev/latch/credentials"
)

// Lifetimes of the authorization code flow's records.
const (
	// AuthRequestTTL bounds the time a person has to sign in after the
	// authorization request (the interaction lives at most an hour too).
	AuthRequestTTL = time.Hour
	// CodeTTL is the authorization code's lifetime (RFC 6749 §4.1.2 asks
	// for a short one; 60 s leaves room for a slow network only).
	CodeTTL = 60 * time.Second
)

// AuthRequest is one validated authorization request (GET /oidc/auth).
type AuthRequest struct {
	ID            string `gorm:"primaryKey"`
	ClientID      string
	RedirectURI   string
	Scope         string
	State         string
	Nonce         string
	CodeChallenge string
	Prompt        string
	// MaxAge is the max_age parameter in seconds, -1 when absent.
	MaxAge    int
	LoginHint string
	// OrgID is the organization_id parameter: the sign-in happens in that
	// organization's context ("" for none).
	OrgID string `gorm:"column:org_id"`
	// InteractionDigest links the request to the Experience interaction
	// that signs the person in ("" while none was started).
	InteractionDigest string
	// SessionID is set once a sign-in completed for the request.
	SessionID string
	CreatedAt time.Time
	ExpiresAt time.Time
	UsedAt    *time.Time
}

func (AuthRequest) TableName() string { return "oidc_auth_requests" }

// HasPrompt reports whether the space-separated prompt lists p.
func (r *AuthRequest) HasPrompt(p string) bool { return contains(strings.Fields(r.Prompt), p) }

// Scopes are the request's scope values.
func (r *AuthRequest) Scopes() []string { return strings.Fields(r.Scope) }

// CreateAuthRequest stores a validated authorization request.
func (s *Service) CreateAuthRequest(ctx context.Context, r AuthRequest) (*AuthRequest, error) {
	now := s.now()
	r.ID = "lar_" + credentials.RandomToken(24)
	r.CreatedAt, r.ExpiresAt = now, now.Add(AuthRequestTTL)
	if err := s.db.WithContext(ctx).Create(&r).Error; err != nil {
		return nil, fmt.Errorf("token: create authorization request: %w", err)
	}
	return &r, nil
}

// ErrAuthRequestNotFound is an unknown, expired or finished authorization
// request.
var ErrAuthRequestNotFound = errors.New("token: authorization request not found")

// AuthRequest returns a live, unfinished authorization request.
func (s *Service) AuthRequest(ctx context.Context, id string) (*AuthRequest, error) {
	var r AuthRequest
	err := s.db.WithContext(ctx).Where("id = ? AND used_at IS NULL AND expires_at > ?", id, s.now()).Take(&r).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, ErrAuthRequestNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("token: get authorization request: %w", err)
	}
	return &r, nil
}

// AuthRequestForInteraction returns the live authorization request that
// started the interaction behind handle, or nil when none did (an
// integrator's own interaction).
func (s *Service) AuthRequestForInteraction(ctx context.Context, handle string) (*AuthRequest, error) {
	if handle == "" {
		return nil, nil
	}
	var r AuthRequest
	err := s.db.WithContext(ctx).Where("interaction_digest = ? AND used_at IS NULL AND expires_at > ?",
		credentials.Digest(handle), s.now()).Take(&r).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("token: find authorization request: %w", err)
	}
	return &r, nil
}

// LinkInteraction records the interaction that signs the person in for r.
func (s *Service) LinkInteraction(ctx context.Context, id, handle string) error {
	return s.updateAuthRequest(ctx, id, map[string]any{"interaction_digest": credentials.Digest(handle)})
}

// CompleteAuthRequest records the session a sign-in for r opened.
func (s *Service) CompleteAuthRequest(ctx context.Context, id, sessionID string) error {
	return s.updateAuthRequest(ctx, id, map[string]any{"session_id": sessionID, "interaction_digest": ""})
}

func (s *Service) updateAuthRequest(ctx context.Context, id string, set map[string]any) error {
	res := s.db.WithContext(ctx).Model(&AuthRequest{}).Where("id = ? AND used_at IS NULL", id).Updates(set)
	if res.Error != nil {
		return fmt.Errorf("token: update authorization request: %w", res.Error)
	}
	if res.RowsAffected == 0 {
		return ErrAuthRequestNotFound
	}
	return nil
}

// codeRow is an issued authorization code (only its digest is stored).
type codeRow struct {
	Digest          string `gorm:"primaryKey"`
	ClientID        string
	RedirectURI     string
	Scope           string
	Nonce           string
	CodeChallenge   string
	SessionID       string
	UserID          string
	OrgID           string `gorm:"column:org_id"`
	CreatedAt       time.Time
	ExpiresAt       time.Time
	UsedAt          *time.Time
	FamilyID        string
	AccessJTI       string `gorm:"column:access_jti"`
	AccessExpiresAt *time.Time
}

func (codeRow) TableName() string { return "oidc_codes" }

// IssueCode finishes the authorization request r for the signed-in user
// (single use: a second call fails) and returns a new authorization code.
func (s *Service) IssueCode(ctx context.Context, r *AuthRequest, userID string) (string, error) {
	now := s.now()
	raw := "lac_" + credentials.RandomToken(32)
	err := s.db.Tx(ctx, func(tx *gorm.DB) error {
		res := tx.Model(&AuthRequest{}).Where("id = ? AND used_at IS NULL", r.ID).Update("used_at", now)
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return ErrAuthRequestNotFound
		}
		return tx.Create(&codeRow{Digest: credentials.Digest(raw), ClientID: r.ClientID, RedirectURI: r.RedirectURI,
			Scope: r.Scope, Nonce: r.Nonce, CodeChallenge: r.CodeChallenge, SessionID: r.SessionID, UserID: userID,
			OrgID: r.OrgID, CreatedAt: now, ExpiresAt: now.Add(CodeTTL)}).Error
	})
	if errors.Is(err, ErrAuthRequestNotFound) {
		return "", err
	}
	if err != nil {
		return "", fmt.Errorf("token: issue authorization code: %w", err)
	}
	return raw, nil
}

// CodeGrant is what a redeemed authorization code stands for.
type CodeGrant struct {
	ClientID, RedirectURI, Scope, Nonce, SessionID, UserID string
	// OrgID is the organization context the authorization request asked
	// for ("" for none).
	OrgID  string
	digest string
}

// RedeemCode consumes an authorization code for client (RFC 6749 §4.1.3):
// it must be live and unused, issued to this client for this redirect_uri,
// and the PKCE verifier must match its challenge (RFC 7636 §4.6). A second
// presentation of a used code revokes what its first use issued (RFC 6749
// §4.1.2) and fails. Every failure is invalid_grant.
func (s *Service) RedeemCode(ctx context.Context, client *Client, raw, redirectURI, verifier string) (*CodeGrant, error) {
	digest := credentials.Digest(raw)
	now := s.now()
	res := s.db.WithContext(ctx).Model(&codeRow{}).Where("digest = ? AND used_at IS NULL AND expires_at > ?", digest, now).
		Update("used_at", now)
	if res.Error != nil {
		return nil, fmt.Errorf("token: redeem authorization code: %w", res.Error)
	}
	var row codeRow
	err := s.db.WithContext(ctx).Where("digest = ?", digest).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, OAuthError(CodeInvalidGrant, "the authorization code is invalid or expired")
	}
	if err != nil {
		return nil, fmt.Errorf("token: redeem authorization code: %w", err)
	}
	if res.RowsAffected == 0 {
		if row.UsedAt != nil {
			if err := s.revokeCodeTokens(ctx, &row); err != nil {
				return nil, err
			}
			return nil, OAuthError(CodeInvalidGrant, "the authorization code was already used; the tokens it issued are revoked")
		}
		return nil, OAuthError(CodeInvalidGrant, "the authorization code is invalid or expired")
	}
	// The code is spent now, whatever follows: a stolen code tried with a
	// wrong verifier cannot be retried, nor then used by its owner.
	if row.ClientID != client.ID {
		return nil, OAuthError(CodeInvalidGrant, "the authorization code was issued to another client")
	}
	if row.RedirectURI != redirectURI {
		return nil, OAuthError(CodeInvalidGrant, "redirect_uri does not match the authorization request")
	}
	if row.CodeChallenge != "" || verifier != "" {
		if !VerifyPKCE(row.CodeChallenge, verifier) {
			return nil, OAuthError(CodeInvalidGrant, "the code_verifier does not match the code_challenge")
		}
	}
	return &CodeGrant{ClientID: row.ClientID, RedirectURI: row.RedirectURI, Scope: row.Scope, Nonce: row.Nonce,
		SessionID: row.SessionID, UserID: row.UserID, OrgID: row.OrgID, digest: digest}, nil
}

// RecordCodeTokens remembers what a code's first use issued, so that a
// replay of the code can revoke it.
func (s *Service) RecordCodeTokens(ctx context.Context, g *CodeGrant, toks *UserTokens) error {
	err := s.db.WithContext(ctx).Model(&codeRow{}).Where("digest = ?", g.digest).
		Updates(map[string]any{"family_id": toks.FamilyID, "access_jti": toks.AccessJTI, "access_expires_at": toks.AccessExpiresAt}).Error
	if err != nil {
		return fmt.Errorf("token: record authorization code tokens: %w", err)
	}
	return nil
}

func (s *Service) revokeCodeTokens(ctx context.Context, row *codeRow) error {
	if row.FamilyID != "" {
		if _, err := s.revokeFamily(ctx, row.FamilyID); err != nil {
			return err
		}
	}
	if row.AccessJTI != "" && row.AccessExpiresAt != nil {
		if err := s.revokeJTI(ctx, row.AccessJTI, *row.AccessExpiresAt); err != nil {
			return err
		}
		s.verified.forget(row.AccessJTI, s.now())
	}
	audit(ctx, s.opts.Audit, AuditEvent{Event: EventCodeReplayed, ClientID: row.ClientID,
		Data: map[string]any{"session_id": row.SessionID, "user_id": row.UserID}})
	return nil
}

// VerifyPKCE checks an RFC 7636 S256 code_verifier against its challenge.
// The verifier is 43–128 unreserved characters (§4.1).
func VerifyPKCE(challenge, verifier string) bool {
	if challenge == "" || len(verifier) < 43 || len(verifier) > 128 {
		return false
	}
	for i := 0; i < len(verifier); i++ {
		c := verifier[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~') {
			return false
		}
	}
	sum := sha256.Sum256([]byte(verifier))
	want := base64.RawURLEncoding.EncodeToString(sum[:])
	return subtle.ConstantTimeCompare([]byte(want), []byte(challenge)) == 1
}

// ValidCodeChallenge reports whether a code_challenge can be an S256 one:
// 43 base64url characters (a SHA-256 digest).
func ValidCodeChallenge(ch string) bool {
	if len(ch) != 43 {
		return false
	}
	_, err := base64.RawURLEncoding.DecodeString(ch)
	return err == nil
}

// atHash is the ID token's at_hash (OIDC Core §3.1.3.6): the left half of
// the access token's hash with the signing algorithm's hash function,
// SHA-256 for both ES256 and RS256.
func atHash(accessToken string) string {
	sum := sha256.Sum256([]byte(accessToken))
	return base64.RawURLEncoding.EncodeToString(sum[:len(sum)/2])
}

// browserSessionRow maps the browser session cookie to a Latch session.
type browserSessionRow struct {
	Digest    string `gorm:"primaryKey"`
	SessionID string
	UserID    string
	CreatedAt time.Time
	ExpiresAt time.Time
}

func (browserSessionRow) TableName() string { return "oidc_browser_sessions" }

// StartBrowserSession returns a new browser session secret for sessionID,
// for the HttpOnly cookie; only its digest is stored.
func (s *Service) StartBrowserSession(ctx context.Context, sessionID, userID string, expires time.Time) (string, error) {
	raw := "lbs_" + credentials.RandomToken(32)
	row := browserSessionRow{Digest: credentials.Digest(raw), SessionID: sessionID, UserID: userID, CreatedAt: s.now(), ExpiresAt: expires}
	if err := s.db.WithContext(ctx).Create(&row).Error; err != nil {
		return "", fmt.Errorf("token: start browser session: %w", err)
	}
	return raw, nil
}

// BrowserSession returns the Latch session id behind a browser session
// cookie, or "" when it is unknown or expired.
func (s *Service) BrowserSession(ctx context.Context, raw string) (string, error) {
	if raw == "" {
		return "", nil
	}
	var row browserSessionRow
	err := s.db.WithContext(ctx).Where("digest = ? AND expires_at > ?", credentials.Digest(raw), s.now()).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("token: browser session: %w", err)
	}
	return row.SessionID, nil
}

// EndBrowserSessions forgets every browser session of a Latch session.
func (s *Service) EndBrowserSessions(ctx context.Context, sessionID string) error {
	if err := s.db.WithContext(ctx).Where("session_id = ?", sessionID).Delete(&browserSessionRow{}).Error; err != nil {
		return fmt.Errorf("token: end browser sessions: %w", err)
	}
	return nil
}

// consentRow remembers the scopes a user granted a third-party client.
type consentRow struct {
	UserID    string `gorm:"primaryKey"`
	ClientID  string `gorm:"primaryKey"`
	Scope     string
	CreatedAt time.Time
}

func (consentRow) TableName() string { return "oidc_consents" }

// HasConsent reports whether userID already granted clientID every scope.
func (s *Service) HasConsent(ctx context.Context, userID, clientID string, scopes []string) (bool, error) {
	var row consentRow
	err := s.db.WithContext(ctx).Where("user_id = ? AND client_id = ?", userID, clientID).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("token: consent: %w", err)
	}
	granted := strings.Fields(row.Scope)
	for _, sc := range scopes {
		if !contains(granted, sc) {
			return false, nil
		}
	}
	return true, nil
}

// GrantConsent remembers that userID granted clientID scopes (adding to
// what was granted before).
func (s *Service) GrantConsent(ctx context.Context, userID, clientID string, scopes []string) error {
	return s.db.Tx(ctx, func(tx *gorm.DB) error {
		var row consentRow
		err := tx.Where("user_id = ? AND client_id = ?", userID, clientID).Take(&row).Error
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return tx.Create(&consentRow{UserID: userID, ClientID: clientID, Scope: join(scopes), CreatedAt: s.now()}).Error
		}
		if err != nil {
			return err
		}
		return tx.Model(&consentRow{}).Where("user_id = ? AND client_id = ?", userID, clientID).
			Update("scope", join(append(strings.Fields(row.Scope), scopes...))).Error
	})
}

// IDTokenHint is what an id_token_hint (OIDC RP-Initiated Logout §2) says.
type IDTokenHint struct {
	Subject, ClientID, SessionID string
}

// VerifyIDTokenHint verifies an ID token Latch issued, expired or not
// (a logout may come long after the token's lifetime): signature, issuer,
// typ. It is no access credential; it names the client and session only.
func (s *Service) VerifyIDTokenHint(ctx context.Context, raw string) (*IDTokenHint, error) {
	claims := jwt.MapClaims{}
	parser := jwt.NewParser(jwt.WithValidMethods([]string{"ES256", "RS256"}), jwt.WithoutClaimsValidation(), jwt.WithStrictDecoding())
	tok, err := parser.ParseWithClaims(raw, claims, s.keyFunc(ctx, func(t *jwt.Token) error {
		if typ, _ := t.Header["typ"].(string); typ != IDTokenType {
			return errors.New("token: not an ID token")
		}
		return nil
	}))
	if err != nil || !tok.Valid {
		return nil, OAuthError(CodeInvalidRequest, "id_token_hint is not a valid ID token of this issuer")
	}
	iss, _ := claims["iss"].(string)
	sub, _ := claims["sub"].(string)
	aud, _ := claims["aud"].(string)
	sid, _ := claims["sid"].(string)
	if iss != s.opts.Issuer || sub == "" || aud == "" {
		return nil, OAuthError(CodeInvalidRequest, "id_token_hint is not a valid ID token of this issuer")
	}
	return &IDTokenHint{Subject: sub, ClientID: aud, SessionID: sid}, nil
}
