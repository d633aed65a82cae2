package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/latch-dev/latch/app"

	"github.com/latch-dev/latch/token"
)

// clientWithSecret is the JSON shape of a client right after its secret
// was (re)generated: the only time the secret is shown.
type clientWithSecret struct {
	*token.Client
	ClientSecret string `json:"client_secret"`
}

func (c *cli) clientCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "client", Short: "Manage OAuth2 clients (trusted backends)"}

	var name, scopes, typ string
	var grants, resources, origins, redirects, logouts []string
	var enforceMFA, sso, firstParty, refreshAlways bool
	create := &cobra.Command{
		Use:   "create",
		Short: "Create a client and print its secret (shown once)",
		Args:  cobra.NoArgs,
		RunE: c.withServices(func(cmd *cobra.Command, svc *app.Services, args []string) error {
			client, secret, err := svc.Tokens.Clients.Create(ctxOf(cmd), token.NewClient{
				Name: name, Scopes: strings.Fields(strings.ReplaceAll(scopes, ",", " ")), GrantTypes: splitList(grants), Resources: splitList(resources),
				EnforceMFA: &enforceMFA, SSO: sso, AllowedOrigins: splitList(origins),
				Type: typ, RedirectURIs: splitList(redirects), PostLogoutRedirectURIs: splitList(logouts), FirstParty: &firstParty,
				RefreshWithoutOfflineAccess: refreshAlways,
			})
			if err != nil {
				return err
			}
			return c.print(clientWithSecret{client, secret}, func(w io.Writer) {
				if client.Public() {
					fmt.Fprintf(w, "client_id:     %s\ntype:          %s (public: no secret, PKCE required)\nscopes:        %s\n",
						client.ID, client.Type, strings.Join(client.Scopes, " "))
					return
				}
				fmt.Fprintf(w, "client_id:     %s\nclient_secret: %s\nscopes:        %s\n(store the secret now: it is not shown again)\n",
					client.ID, secret, strings.Join(client.Scopes, " "))
			})
		}),
	}
	create.Flags().StringVar(&name, "name", "", "display name (required)")
	create.Flags().StringVar(&scopes, "scope", "", `space-separated scopes, e.g. "auth:execute users:read users:write"`)
	create.Flags().StringSliceVar(&grants, "grant-types", nil, "grant types (default client_credentials,refresh_token)")
	create.Flags().StringSliceVar(&resources, "resource", nil, "resource URI the client may request as audience (repeatable)")
	create.Flags().BoolVar(&enforceMFA, "enforce-mfa", true, "users with MFA factors must complete MFA before tokens are issued (false: issue tokens after the password and let the app check amr)")
	create.Flags().BoolVar(&sso, "sso", false, "cross-application single sign-on: this client may re-authenticate (session/authenticate) sessions created by other --sso clients, and they its")
	create.Flags().StringSliceVar(&origins, "allowed-origin", nil, "browser origin (https://app.example.com) allowed to drive the Experience API with the interaction cookie, besides the issuer's own (repeatable)")
	create.Flags().StringVar(&typ, "type", "backend", "backend (a trusted server using Latch's APIs), web (a server-side web app: secret), spa or native (public: no secret, PKCE): web, spa and native sign people in through /oidc/auth")
	create.Flags().StringSliceVar(&redirects, "redirect-uri", nil, "redirect URI, matched exactly (repeatable): of the authorization code flow (web, spa, native clients), or where social and SSO sign-ins of a backend client's Experience API interactions return")
	create.Flags().StringSliceVar(&logouts, "post-logout-redirect-uri", nil, "URI /oidc/session/end may send the browser back to (repeatable)")
	create.Flags().BoolVar(&firstParty, "first-party", true, "the deployment's own app: no consent page (false: users consent to the scopes once per client)")
	create.Flags().BoolVar(&refreshAlways, "refresh-without-offline-access", false, "web clients: the authorization code grant also issues a refresh token when offline_access was not requested")
	_ = create.MarkFlagRequired("name")

	list := &cobra.Command{
		Use:   "list",
		Short: "List clients",
		Args:  cobra.NoArgs,
		RunE: c.readOnly(func(cmd *cobra.Command, svc *app.Services, args []string) error {
			clients, err := svc.Tokens.Clients.List(ctxOf(cmd))
			if err != nil {
				return err
			}
			return c.print(clients, func(w io.Writer) {
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "CLIENT ID\tNAME\tSCOPES\tCREATED")
				for _, cl := range clients {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", cl.ID, cl.Name, strings.Join(cl.Scopes, " "), cl.CreatedAt.Format("2006-01-02 15:04"))
				}
				tw.Flush()
			})
		}),
	}

	del := &cobra.Command{
		Use:   "delete CLIENT_ID",
		Short: "Delete a client; its secret and tokens stop working",
		Long: `Delete a client. Its secret and every token it was issued stop working at once
(on other servers within LATCH_CLIENT_CACHE_TTL).`,
		Args: cobra.ExactArgs(1),
		RunE: c.withServices(func(cmd *cobra.Command, svc *app.Services, args []string) error {
			if err := svc.Tokens.Clients.Delete(ctxOf(cmd), args[0]); err != nil {
				return err
			}
			return c.print(map[string]any{"deleted": args[0]}, func(w io.Writer) { fmt.Fprintln(w, "deleted", args[0]) })
		}),
	}

	var revokeTokens bool
	rotate := &cobra.Command{
		Use:   "rotate-secret CLIENT_ID",
		Short: "Replace a client's secret and print the new one",
		Long: `Replace a client's secret and print the new one (shown once). The old secret
stops working at once (on other servers within LATCH_CLIENT_CACHE_TTL).

ClientAccessTokens issued before the rotation stay valid until they expire,
so a planned rotation breaks no running backend. With --revoke-tokens they
are refused too, on every route (other servers within LATCH_CLIENT_CACHE_TTL):
use it when the old secret may have leaked. Token iat has whole seconds, so
the rotation's own second is refused as well; the command waits for that
second to end before printing the new secret, so tokens minted with it are
not caught.`,
		Args: cobra.ExactArgs(1),
		RunE: c.withServices(func(cmd *cobra.Command, svc *app.Services, args []string) error {
			client, secret, err := svc.Tokens.Clients.RotateSecret(ctxOf(cmd), args[0], revokeTokens)
			if err != nil {
				return err
			}
			return c.print(clientWithSecret{client, secret}, func(w io.Writer) {
				fmt.Fprintf(w, "client_id:     %s\nclient_secret: %s\n", client.ID, secret)
				if revokeTokens {
					fmt.Fprintln(w, "tokens issued before the rotation are refused")
				}
			})
		}),
	}
	rotate.Flags().BoolVar(&revokeTokens, "revoke-tokens", false, "also refuse every ClientAccessToken issued before the rotation (default: they stay valid until they expire)")
	cmd.AddCommand(create, list, del, rotate)
	return cmd
}

func splitList(in []string) []string {
	var out []string
	for _, s := range in {
		out = append(out, strings.Fields(strings.ReplaceAll(s, ",", " "))...)
	}
	return out
}
