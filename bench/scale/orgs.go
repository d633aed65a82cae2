package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sort"
	"time"
)

// Organizations at scale (issue 12). Every loaded user is a member of one
// of scaleOrgs organizations (user i of organization i mod scaleOrgs) with
// one of scaleRoles roles, so at 10^6 users there are 10^4 organizations
// and 10^6 memberships. Two figures per size:
//
//   - password/authenticate with org_id against without it, interleaved
//     request by request on the same server (with org_id it also looks the
//     organization up and reads the membership with its roles): the p99
//     ratio should be 1 ± 10%;
//   - GET /v1/users/{id}/organizations, against the yardstick like the
//     other endpoints: it reads the user's memberships through the user_id
//     index, so it stays flat however many memberships the table holds.
const (
	scaleOrgs  = 10_000
	scaleRoles = 5
)

func (p *population) orgID(i int) string  { return p.id("org", i, 20) }
func (p *population) roleID(i int) string { return p.id("role", i, 20) }

// userOrg is the organization of user i.
func (p *population) userOrg(i int) string { return p.orgID(i % scaleOrgs) }

// Column lists of the organization tables (experience/migrations.go).
var (
	orgColumns        = []string{"id", "name", "description", "custom_data", "mfa_required", "created_at", "updated_at"}
	roleColumns       = []string{"id", "name", "description", "permissions", "created_at", "updated_at"}
	memberColumns     = []string{"organization_id", "user_id", "created_at"}
	memberRoleColumns = []string{"organization_id", "user_id", "role_id"}
)

// orgTables are the organization tables, in the order their foreign keys
// need: row i of a roles or organizations table exists while i is below
// its count, so growing the users grows the organizations up to scaleOrgs.
func (p *population) orgTables() []table {
	return []table{
		{"organization_roles", roleColumns, func(i int) []any {
			if i >= scaleRoles {
				return nil
			}
			return []any{p.roleID(i), fmt.Sprintf("scale-role-%d", i), "", fmt.Sprintf(`["scale:%d","scale:read"]`, i), p.now, p.now}
		}},
		{"organizations", orgColumns, func(i int) []any {
			if i >= scaleOrgs {
				return nil
			}
			return []any{p.orgID(i), fmt.Sprintf("scale org %05d", i), "", "{}", false, p.now, p.now}
		}},
		{"organization_members", memberColumns, func(i int) []any {
			return []any{p.userOrg(i), p.userID(i), p.now}
		}},
		{"organization_member_roles", memberRoleColumns, func(i int) []any {
			return []any{p.userOrg(i), p.userID(i), p.roleID(i % scaleRoles)}
		}},
	}
}

func init() {
	hotQueries = append(hotQueries,
		hotQuery{"organization by id (org_id sign-in)", `SELECT * FROM organizations WHERE id = ? LIMIT 1`,
			func(p *population, i int) []any { return []any{p.userOrg(i)} }},
		hotQuery{"membership with its roles (org_id sign-in)", `SELECT r.name AS role, r.permissions
FROM organization_members m
LEFT JOIN organization_member_roles mr ON mr.organization_id = m.organization_id AND mr.user_id = m.user_id
LEFT JOIN organization_roles r ON r.id = mr.role_id
WHERE m.organization_id = ? AND m.user_id = ?`,
			func(p *population, i int) []any { return []any{p.userOrg(i), p.userID(i)} }},
		hotQuery{"organizations of a user", `SELECT o.id AS org_id, o.name, r.name AS role
FROM organization_members m
JOIN organizations o ON o.id = m.organization_id
LEFT JOIN organization_member_roles mr ON mr.organization_id = m.organization_id AND mr.user_id = m.user_id
LEFT JOIN organization_roles r ON r.id = mr.role_id
WHERE m.user_id = ?`,
			func(p *population, i int) []any { return []any{p.userID(i)} }},
		hotQuery{"organization by e-mail domain (discovery)", `SELECT organization_id FROM organization_domains WHERE domain = ? AND purpose = ? LIMIT 2`,
			func(p *population, i int) []any { return []any{"example.com", "discovery"} }},
	)
}

// orgFigures are one window's organization figures, per server (yardstick
// first, then the subject): sorted latencies.
type orgFigures struct {
	plain, withOrg [2][]time.Duration // password/authenticate without and with org_id
	userOrgs       [2][]time.Duration // GET /v1/users/{id}/organizations
}

// measureOrgs measures the organization figures of window w: count
// sign-ins with and without org_id per server, interleaved (and alternating
// between the servers), then n GETs of a user's organizations.
func measureOrgs(ctx context.Context, rng *rand.Rand, w *window, count, n int, servers ...*server) error {
	const warmup = 10
	for k := 0; k < warmup+2*count; k++ {
		for j := range servers {
			idx := (j + k) % len(servers)
			s := servers[idx]
			i := rng.IntN(s.size)
			body := map[string]any{"username": username(i), "password": password}
			if k%2 == 1 {
				body["org_id"] = s.pop.userOrg(i)
			}
			d, status, err := s.timed(ctx, "/v1/auth/password/authenticate", body, nil)
			if err != nil {
				return err
			}
			if k < warmup {
				continue
			}
			if status != http.StatusOK {
				w.failed++
				continue
			}
			if k%2 == 1 {
				w.orgs.withOrg[idx] = append(w.orgs.withOrg[idx], d)
			} else {
				w.orgs.plain[idx] = append(w.orgs.plain[idx], d)
			}
		}
	}
	for k := 0; k < warmup+n; k++ {
		for j := range servers {
			idx := (j + k) % len(servers)
			s := servers[idx]
			d, status, err := s.timedGet(ctx, "/v1/users/"+s.pop.userID(rng.IntN(s.size))+"/organizations")
			if err != nil {
				return err
			}
			if k < warmup {
				continue
			}
			if status != http.StatusOK {
				w.failed++
				continue
			}
			w.orgs.userOrgs[idx] = append(w.orgs.userOrgs[idx], d)
		}
	}
	for _, l := range [][]time.Duration{w.orgs.plain[0], w.orgs.plain[1], w.orgs.withOrg[0], w.orgs.withOrg[1], w.orgs.userOrgs[0], w.orgs.userOrgs[1]} {
		if len(l) == 0 {
			return fmt.Errorf("organizations: no request succeeded")
		}
		sort.Slice(l, func(a, b int) bool { return l[a] < l[b] })
	}
	o := &w.orgs
	fmt.Printf("  %-22s %9s users: with org_id ÷ without, interleaved: p50 %.2f× p99 %.2f×   yardstick: p50 %.2f× p99 %.2f×\n",
		"password/auth org_id", thousands(w.size), ratio(o.withOrg[1], o.plain[1], 50), ratio(o.withOrg[1], o.plain[1], 99),
		ratio(o.withOrg[0], o.plain[0], 50), ratio(o.withOrg[0], o.plain[0], 99))
	fmt.Printf("  %-22s %9s users: p50 %7.2f ms  p99 %7.2f ms   yardstick: p50 %7.2f ms  p99 %7.2f ms   ratio p50 %.2f× p99 %.2f×\n",
		"users/{id}/orgs", thousands(w.size), ms(pct(o.userOrgs[1], 50)), ms(pct(o.userOrgs[1], 99)), ms(pct(o.userOrgs[0], 50)),
		ms(pct(o.userOrgs[0], 99)), ratio(o.userOrgs[1], o.userOrgs[0], 50), ratio(o.userOrgs[1], o.userOrgs[0], 99))
	return nil
}

// timedGet sends a GET with the ClientAccessToken and times it.
func (s *server) timedGet(ctx context.Context, path string) (time.Duration, int, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.srv.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+s.token)
	start := time.Now()
	res, err := s.hc.Do(req)
	if err != nil {
		return 0, 0, err
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return time.Since(start), res.StatusCode, nil
}

// reportOrgs prints the organizations table: per database and size, the
// with/without org_id ratio of password/authenticate on the subject, and
// GET /v1/users/{id}/organizations with its ratio to the yardstick.
func reportOrgs(all []*result) {
	fmt.Printf("\n== organizations: %s organizations, one membership (with a role) per user; p50 / p99 in ms\n\n", thousands(scaleOrgs))
	fmt.Println("| database | users (= memberships) | password/authenticate without org_id | with org_id (÷ without, same window) | GET /v1/users/{id}/organizations (÷ yardstick) |")
	fmt.Println("|---|---:|---|---|---|")
	for _, r := range all {
		for _, w := range r.windows {
			o := w.orgs
			fmt.Printf("| %s | %s | %.1f / %.1f | %.1f / %.1f (%.2f× / %.2f×) | %.2f / %.2f (%.2f× / %.2f×) |\n", r.db, thousands(w.size),
				ms(pct(o.plain[1], 50)), ms(pct(o.plain[1], 99)), ms(pct(o.withOrg[1], 50)), ms(pct(o.withOrg[1], 99)),
				ratio(o.withOrg[1], o.plain[1], 50), ratio(o.withOrg[1], o.plain[1], 99),
				ms(pct(o.userOrgs[1], 50)), ms(pct(o.userOrgs[1], 99)), ratio(o.userOrgs[1], o.userOrgs[0], 50), ratio(o.userOrgs[1], o.userOrgs[0], 99))
		}
	}
}
