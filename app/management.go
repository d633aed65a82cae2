package app

// The management API (scope `management`): clients, signing keys, settings.
// Each handler calls the same domain operation as the matching `latch`
// command, and every change is audited by that operation, with the calling
// client recorded as the actor.

import (
	"context"
	"io"
	"mime"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/latch-dev/latch/experience"
	"github.com/latch-dev/latch/fault"
	"github.com/latch-dev/latch/store"
	"github.com/latch-dev/latch/token"
)

// auditActorKey carries who asked for a change into the domain operations
// that audit it (see tokenAudit), which know what changed but not who asked.
type auditActorKey struct{}

type auditActor struct{ clientID, ip string }

// managementContext returns the request's context marked with the calling
// client as the actor of the changes it makes.
func managementContext(c echo.Context) context.Context {
	return context.WithValue(c.Request().Context(), auditActorKey{}, auditActor{clientID: clientToken(c).ClientID, ip: c.RealIP()})
}

func actorOf(ctx context.Context) (auditActor, bool) {
	a, ok := ctx.Value(auditActorKey{}).(auditActor)
	return a, ok
}

// clientWithSecret is a client right after its secret was (re)generated:
// the only time the secret is shown.
type clientWithSecret struct {
	*token.Client
	ClientSecret string `json:"client_secret"`
}

// clientRequest is the body of client create and update. Absent fields keep
// their value (update) or default (create).
type clientRequest struct {
	Name           *string   `json:"name"`
	Scopes         *[]string `json:"scopes"`
	GrantTypes     *[]string `json:"grant_types"`
	Resources      *[]string `json:"resources"`
	EnforceMFA     *bool     `json:"enforce_mfa"`
	SSO            *bool     `json:"sso"`
	AllowedOrigins *[]string `json:"allowed_origins"`
	RedirectURIs   *[]string `json:"redirect_uris"`
}

func (r *clientRequest) validate() []fault.Detail {
	var f fields
	if r.Name != nil {
		f.maxLen("name", *r.Name, 200)
	}
	for name, list := range map[string]*[]string{"scopes": r.Scopes, "grant_types": r.GrantTypes, "resources": r.Resources, "allowed_origins": r.AllowedOrigins, "redirect_uris": r.RedirectURIs} {
		if list != nil && len(*list) > 50 {
			f.add(name, "must have at most 50 entries")
		}
	}
	return f
}

func deref(list *[]string) []string {
	if list == nil {
		return nil
	}
	return *list
}

// createClient is POST /v1/clients.
func (a *App) createClient(c echo.Context) error {
	var req clientRequest
	if err := bindJSON(c, &req); err != nil {
		return err
	}
	if req.Name == nil {
		return fault.Invalid(fault.Detail{Field: "name", Message: "is required"})
	}
	in := token.NewClient{Name: *req.Name, Scopes: deref(req.Scopes), GrantTypes: deref(req.GrantTypes), Resources: deref(req.Resources),
		EnforceMFA: req.EnforceMFA, AllowedOrigins: deref(req.AllowedOrigins), RedirectURIs: deref(req.RedirectURIs)}
	if req.SSO != nil {
		in.SSO = *req.SSO
	}
	client, secret, err := a.tokens.Clients.Create(managementContext(c), in)
	if err != nil {
		return err
	}
	noStore(c)
	return c.JSON(http.StatusCreated, clientWithSecret{client, secret})
}

// listClients is GET /v1/clients.
func (a *App) listClients(c echo.Context) error {
	clients, err := a.tokens.Clients.List(c.Request().Context())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"clients": clients})
}

// getClient is GET /v1/clients/:client_id.
func (a *App) getClient(c echo.Context) error {
	client, err := a.tokens.Clients.Get(c.Request().Context(), c.Param("client_id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, client)
}

// updateClient is PATCH /v1/clients/:client_id.
func (a *App) updateClient(c echo.Context) error {
	var req clientRequest
	if err := bindJSON(c, &req); err != nil {
		return err
	}
	client, err := a.tokens.Clients.Update(managementContext(c), c.Param("client_id"), token.ClientPatch{
		Name: req.Name, Scopes: req.Scopes, GrantTypes: req.GrantTypes, Resources: req.Resources,
		EnforceMFA: req.EnforceMFA, SSO: req.SSO, AllowedOrigins: req.AllowedOrigins, RedirectURIs: req.RedirectURIs})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, client)
}

// deleteClient is DELETE /v1/clients/:client_id.
func (a *App) deleteClient(c echo.Context) error {
	if err := a.tokens.Clients.Delete(managementContext(c), c.Param("client_id")); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

type rotateSecretRequest struct {
	RevokeTokens bool `json:"revoke_tokens"`
}

func (*rotateSecretRequest) validate() []fault.Detail { return nil }

// rotateClientSecret is POST /v1/clients/:client_id/secret. The body is
// optional.
func (a *App) rotateClientSecret(c echo.Context) error {
	var req rotateSecretRequest
	if hasBody(c) {
		if err := bindJSON(c, &req); err != nil {
			return err
		}
	}
	client, secret, err := a.tokens.Clients.RotateSecret(managementContext(c), c.Param("client_id"), req.RevokeTokens)
	if err != nil {
		return err
	}
	noStore(c)
	return c.JSON(http.StatusOK, clientWithSecret{client, secret})
}

// listKeys is GET /v1/keys.
func (a *App) listKeys(c echo.Context) error {
	keys, err := a.tokens.Keys.List(c.Request().Context())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"keys": keys})
}

// rotateKeys is POST /v1/keys/rotate: the next key becomes active now.
func (a *App) rotateKeys(c echo.Context) error {
	ctx := managementContext(c)
	if _, err := a.tokens.Keys.Rotate(ctx, 0); err != nil {
		return err
	}
	keys, err := a.tokens.Keys.List(ctx)
	if err != nil {
		return err
	}
	var active string
	for _, k := range keys {
		if k.State == token.KeyActive {
			active = k.Kid
		}
	}
	return c.JSON(http.StatusOK, map[string]any{"active_kid": active, "keys": keys})
}

// getSettings is GET /v1/settings.
func (a *App) getSettings(c echo.Context) error {
	s, err := a.engine.Settings.Get(c.Request().Context())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, s)
}

// patchSettings is PATCH /v1/settings: an RFC 7396 merge patch.
func (a *App) patchSettings(c echo.Context) error {
	ct, _, _ := mime.ParseMediaType(c.Request().Header.Get(echo.HeaderContentType))
	if ct != "application/merge-patch+json" && ct != echo.MIMEApplicationJSON {
		return fault.Invalid(fault.Detail{Field: "body", Message: "Content-Type must be application/merge-patch+json (or application/json)"})
	}
	raw, err := io.ReadAll(c.Request().Body)
	if err != nil {
		return err // the body limit's 413, or a broken connection
	}
	s, err := a.engine.PatchSettings(c.Request().Context(), raw, experience.SessionMeta{ClientID: clientToken(c).ClientID, IPAddress: c.RealIP()})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, s)
}

// listQuery reads the paging and time parameters every listing shares.
type listQuery struct {
	c       echo.Context
	details fields
}

// limit is ?limit=, from 1 to max (default def).
func (q *listQuery) limit(def, max int) int {
	v := q.c.QueryParam("limit")
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > max {
		q.details.add("limit", "must be a number from 1 to %d", max)
	}
	return n
}

// cursor is ?cursor=, a next_cursor of an earlier page.
func (q *listQuery) cursor() *store.Cursor {
	v := q.c.QueryParam("cursor")
	if v == "" {
		return nil
	}
	cur, ok := store.ParseCursor(v)
	if !ok {
		q.details.add("cursor", "is not a cursor this listing returned")
		return nil
	}
	return &cur
}

// time is an RFC 3339 timestamp parameter.
func (q *listQuery) time(name string) time.Time {
	v := q.c.QueryParam(name)
	if v == "" {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		q.details.add(name, "must be an RFC 3339 timestamp such as 2026-01-02T15:04:05Z")
	}
	return t
}

func (q *listQuery) err() error {
	if len(q.details) > 0 {
		return fault.Invalid(q.details...)
	}
	return nil
}

// page renders a listing under key, with next_cursor when there is more.
func page(c echo.Context, key string, items any, next string) error {
	out := map[string]any{key: items}
	if next != "" {
		out["next_cursor"] = next
	}
	return c.JSON(http.StatusOK, out)
}

// auditEvents is GET /v1/audit-events?user_id=&client_id=&event=&since=&until=&cursor=&limit=.
func (a *App) auditEvents(c echo.Context) error {
	q := listQuery{c: c}
	f := experience.AuditFilter{UserID: c.QueryParam("user_id"), ClientID: c.QueryParam("client_id"), Event: c.QueryParam("event"),
		Since: q.time("since"), Until: q.time("until"), After: q.cursor(), Limit: q.limit(100, 1000)}
	if err := q.err(); err != nil {
		return err
	}
	events, next, err := a.engine.Audit.List(c.Request().Context(), f)
	if err != nil {
		return err
	}
	return page(c, "events", events, next)
}

// listUsers is GET /v1/users: every user, oldest first, a page at a time,
// narrowed by exact identifiers (username, email, phone_number: the lookup
// by one identifier), a substring q, suspended and created_after.
func (a *App) listUsers(c echo.Context) error {
	q := listQuery{c: c}
	f := experience.UserFilter{Query: c.QueryParam("q"), CreatedAfter: q.time("created_after"), After: q.cursor(), Limit: q.limit(50, 200)}
	if len(f.Query) > 320 {
		q.details.add("q", "must be at most 320 characters")
	}
	switch v := c.QueryParam("suspended"); v {
	case "":
	case "true", "false":
		suspended := v == "true"
		f.Suspended = &suspended
	default:
		q.details.add("suspended", "must be true or false")
	}
	for _, id := range []struct {
		param, typ string
		dst        *string
	}{{"username", experience.IdentifierUsername, &f.Username}, {"email", experience.IdentifierEmail, &f.Email},
		{"phone_number", experience.IdentifierPhone, &f.Phone}} {
		v := c.QueryParam(id.param)
		if v == "" {
			continue
		}
		normalized, err := a.engine.Normalizer().Normalize(experience.Identifier{Type: id.typ, Value: v})
		if err != nil {
			q.details.add(id.param, "is not a valid %s", id.param)
			continue
		}
		*id.dst = normalized
	}
	if err := q.err(); err != nil {
		return err
	}
	ctx := c.Request().Context()
	users, next, err := a.engine.Users.List(ctx, f)
	if err != nil {
		return err
	}
	views := make([]userView, 0, len(users))
	for _, u := range users {
		locked, err := a.engine.LockStatus(ctx, u)
		if err != nil {
			return err
		}
		views = append(views, userView{User: u, LockedSeconds: locked})
	}
	return page(c, "users", views, next)
}
