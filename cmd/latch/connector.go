package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/latch-dev/latch/app"
	"github.com/latch-dev/latch/experience"
)

// connectorCmd is `latch connector …`: the social and enterprise SSO
// connectors, as /v1/sso-connectors and /v1/social-connectors manage them.
func (c *cli) connectorCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "connector", Short: "Manage social and enterprise SSO connectors (upstream identity providers)"}
	family := func(arg string) (string, error) {
		switch arg {
		case experience.FamilySSO, experience.FamilySocial:
			return arg, nil
		}
		return "", fmt.Errorf("the connector kind must be sso or social, not %q", arg)
	}

	var name, provider, configArg, configFile string
	var domains, orgs []string
	var trust, trustMFA bool
	input := func(cmd *cobra.Command) (experience.ConnectorInput, error) {
		var in experience.ConnectorInput
		flags := cmd.Flags()
		if flags.Changed("name") {
			in.Name = &name
		}
		if flags.Changed("provider") {
			in.Provider = &provider
		}
		if flags.Changed("domain") {
			d := splitList(domains)
			in.Domains = &d
		}
		if flags.Changed("jit-org") {
			o := splitList(orgs)
			in.JITOrganizations = &o
		}
		if flags.Changed("trust-unverified-email") {
			in.TrustUnverifiedEmail = &trust
		}
		if flags.Changed("trust-upstream-mfa") {
			in.TrustUpstreamMFA = &trustMFA
		}
		switch {
		case configFile == "-":
			raw, err := io.ReadAll(cmd.InOrStdin())
			if err != nil {
				return in, err
			}
			in.Config = raw
		case configFile != "":
			raw, err := os.ReadFile(configFile)
			if err != nil {
				return in, err
			}
			in.Config = raw
		case configArg != "":
			in.Config = json.RawMessage(configArg)
		}
		if len(in.Config) > 0 && !json.Valid(in.Config) {
			return in, fmt.Errorf("the configuration is not valid JSON")
		}
		return in, nil
	}
	addFlags := func(cmd *cobra.Command) {
		f := cmd.Flags()
		f.StringVar(&name, "name", "", "display name")
		f.StringVar(&provider, "provider", "", "oidc or saml (sso), oidc or oauth2 (social)")
		f.StringSliceVar(&domains, "domain", nil, "e-mail domain the SSO connector owns (repeatable)")
		f.StringSliceVar(&orgs, "jit-org", nil, "organization an account created through this SSO connector joins (repeatable)")
		f.BoolVar(&trust, "trust-unverified-email", false, "trust the SSO provider's e-mail addresses even when it does not mark them verified")
		f.BoolVar(&trustMFA, "trust-upstream-mfa", false, "SSO sign-ins through this connector satisfy MFA (its provider enforces MFA without reporting it)")
		f.StringVar(&configArg, "config", "", `provider configuration as JSON, e.g. {"issuer": …, "client_id": …} or, SAML, {"metadata_url": …} (prefer --config-file for a secret)`)
		f.StringVar(&configFile, "config-file", "", "read the provider configuration (JSON) from a file, or - for stdin")
	}
	show := func(conn *experience.Connector) error {
		return c.print(conn, func(w io.Writer) {
			fmt.Fprintf(w, "id:        %s\nname:      %s\nprovider:  %s\ndomains:   %s\nsecret:    %v\n",
				conn.ID, conn.Name, conn.Provider, strings.Join(conn.Domains, " "), conn.HasSecret)
			if sp := conn.ServiceProvider; sp != nil {
				// What the IdP administrator needs: our entity id and ACS.
				fmt.Fprintf(w, "entity id: %s\nacs:       %s\n", sp.EntityID, sp.ACSURL)
			}
		})
	}

	// write runs a create or an update: the family, the input from the
	// flags, then the connector shown.
	write := func(op func(ctx context.Context, svc *app.Services, fam string, args []string, in experience.ConnectorInput) (*experience.Connector, error)) func(*cobra.Command, []string) error {
		return c.withServices(func(cmd *cobra.Command, svc *app.Services, args []string) error {
			fam, err := family(args[0])
			if err != nil {
				return err
			}
			in, err := input(cmd)
			if err != nil {
				return err
			}
			conn, err := op(ctxOf(cmd), svc, fam, args, in)
			if err != nil {
				return err
			}
			return show(conn)
		})
	}

	create := &cobra.Command{
		Use:   "create sso|social",
		Short: "Create a connector (its client secret, or SAML SP key made by Latch, is sealed and never shown)",
		Args:  cobra.ExactArgs(1),
		RunE: write(func(ctx context.Context, svc *app.Services, fam string, args []string, in experience.ConnectorInput) (*experience.Connector, error) {
			return svc.Engine.Connectors.Create(ctx, fam, in)
		}),
	}
	addFlags(create)

	update := &cobra.Command{
		Use:   "update sso|social ID",
		Short: "Change a connector (the configuration is merged; an absent client_secret stays)",
		Args:  cobra.ExactArgs(2),
		RunE: write(func(ctx context.Context, svc *app.Services, fam string, args []string, in experience.ConnectorInput) (*experience.Connector, error) {
			return svc.Engine.Connectors.Update(ctx, fam, args[1], in)
		}),
	}
	addFlags(update)

	list := &cobra.Command{
		Use:   "list sso|social",
		Short: "List connectors",
		Args:  cobra.ExactArgs(1),
		RunE: c.withServices(func(cmd *cobra.Command, svc *app.Services, args []string) error {
			fam, err := family(args[0])
			if err != nil {
				return err
			}
			list, err := svc.Engine.Connectors.List(ctxOf(cmd), fam)
			if err != nil {
				return err
			}
			return c.print(map[string]any{"connectors": list}, func(w io.Writer) {
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tNAME\tPROVIDER\tDOMAINS")
				for _, conn := range list {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", conn.ID, conn.Name, conn.Provider, strings.Join(conn.Domains, " "))
				}
				tw.Flush()
			})
		}),
	}

	get := &cobra.Command{
		Use:   "show sso|social ID",
		Short: "Show a connector (never its secret)",
		Args:  cobra.ExactArgs(2),
		RunE: c.withServices(func(cmd *cobra.Command, svc *app.Services, args []string) error {
			fam, err := family(args[0])
			if err != nil {
				return err
			}
			conn, err := svc.Engine.Connectors.Get(ctxOf(cmd), fam, args[1])
			if err != nil {
				return err
			}
			return show(conn)
		}),
	}

	del := &cobra.Command{
		Use:   "delete sso|social ID",
		Short: "Delete a connector, its domains and the identities linked through it",
		Args:  cobra.ExactArgs(2),
		RunE: c.withServices(func(cmd *cobra.Command, svc *app.Services, args []string) error {
			fam, err := family(args[0])
			if err != nil {
				return err
			}
			if err := svc.Engine.Connectors.Delete(ctxOf(cmd), fam, args[1]); err != nil {
				return err
			}
			return c.print(map[string]any{"deleted": args[1]}, func(w io.Writer) { fmt.Fprintln(w, "deleted", args[1]) })
		}),
	}
	cmd.AddCommand(create, update, list, get, del)
	return cmd
}
