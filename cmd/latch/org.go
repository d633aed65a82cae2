package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/latch-dev/latch/app"
	"github.com/latch-dev/latch/experience"
	"github.com/latch-dev/latch/store"
)

// pageJSON is the JSON shape of one page of a listing, as the API answers
// it: the entries under key, and next_cursor unless it is the last page.
func pageJSON(key string, items any, next string) map[string]any {
	out := map[string]any{key: items}
	if next != "" {
		out["next_cursor"] = next
	}
	return out
}

// pageOpts are the --limit and --cursor of a listing command.
type pageOpts struct {
	limit  int
	cursor string
}

// pageFlags adds --limit and --cursor to a listing command.
func pageFlags(cmd *cobra.Command, p *pageOpts) {
	cmd.Flags().IntVar(&p.limit, "limit", 50, "the most entries to print (1 to 200)")
	cmd.Flags().StringVar(&p.cursor, "cursor", "", "continue after a previous listing (its next_cursor)")
}

// after checks the flags and decodes the cursor.
func (p pageOpts) after() (*store.Cursor, error) {
	if p.limit < 1 || p.limit > 200 {
		return nil, fmt.Errorf("--limit must be from 1 to 200")
	}
	if p.cursor == "" {
		return nil, nil
	}
	cur, ok := store.ParseCursor(p.cursor)
	if !ok {
		return nil, fmt.Errorf("--cursor is not a next_cursor of this listing")
	}
	return &cur, nil
}

// moreHint tells, in text mode, how to get the next page.
func moreHint(w io.Writer, next string) {
	if next != "" {
		fmt.Fprintf(w, "(more: --cursor %s)\n", next)
	}
}

func (c *cli) orgCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "org", Short: "Manage organizations, their members and organization roles"}

	var in struct {
		name, description             string
		domains, jitDomains, jitRoles []string
		mfaRequired                   bool
	}
	create := &cobra.Command{
		Use:   "create",
		Short: "Create an organization",
		Args:  cobra.NoArgs,
		RunE: c.withServices(func(cmd *cobra.Command, svc *app.Services, args []string) error {
			org, err := svc.Engine.CreateOrganization(ctxOf(cmd), experience.OrgInput{Name: &in.name, Description: &in.description,
				Domains: listFlag(in.domains), JITDomains: listFlag(in.jitDomains), JITRoles: listFlag(in.jitRoles), MFARequired: &in.mfaRequired},
				experience.SessionMeta{})
			if err != nil {
				return err
			}
			return c.print(org, func(w io.Writer) { printOrg(w, org) })
		}),
	}
	create.Flags().StringVar(&in.name, "name", "", "name (required, unique)")
	create.Flags().StringVar(&in.description, "description", "", "description")
	create.Flags().StringSliceVar(&in.domains, "domain", nil, "e-mail domain that finds the organization at an e-mail sign-in without org_id (repeatable)")
	create.Flags().StringSliceVar(&in.jitDomains, "jit-domain", nil, "e-mail domain whose verified addresses make new users members (repeatable)")
	create.Flags().StringSliceVar(&in.jitRoles, "jit-role", nil, "organization role (name) just-in-time members get (repeatable)")
	create.Flags().BoolVar(&in.mfaRequired, "mfa-required", false, "sign-ins in the organization's context must complete MFA")
	_ = create.MarkFlagRequired("name")

	var q string
	var listPage pageOpts
	list := &cobra.Command{
		Use:   "list",
		Short: "List organizations, oldest first",
		Args:  cobra.NoArgs,
		RunE: c.readOnly(func(cmd *cobra.Command, svc *app.Services, args []string) error {
			after, err := listPage.after()
			if err != nil {
				return err
			}
			orgs, next, err := svc.Engine.Orgs.List(ctxOf(cmd), experience.OrgFilter{Query: q, After: after, Limit: listPage.limit})
			if err != nil {
				return err
			}
			return c.print(pageJSON("organizations", orgs, next), func(w io.Writer) {
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ORG ID\tNAME\tMFA REQUIRED\tDOMAINS")
				for _, o := range orgs {
					fmt.Fprintf(tw, "%s\t%s\t%v\t%s\n", o.ID, o.Name, o.MFARequired, strings.Join(o.Domains, " "))
				}
				tw.Flush()
				moreHint(w, next)
			})
		}),
	}
	list.Flags().StringVar(&q, "q", "", "only organizations whose name contains this (case-insensitive)")
	pageFlags(list, &listPage)

	show := &cobra.Command{
		Use:   "show ORG_ID",
		Short: "Show an organization",
		Args:  cobra.ExactArgs(1),
		RunE: c.readOnly(func(cmd *cobra.Command, svc *app.Services, args []string) error {
			org, err := svc.Engine.Orgs.Get(ctxOf(cmd), args[0])
			if err != nil {
				return err
			}
			return c.print(org, func(w io.Writer) { printOrg(w, org) })
		}),
	}

	del := &cobra.Command{
		Use:   "delete ORG_ID",
		Short: "Delete an organization and its memberships",
		Args:  cobra.ExactArgs(1),
		RunE: c.withServices(func(cmd *cobra.Command, svc *app.Services, args []string) error {
			if err := svc.Engine.DeleteOrganization(ctxOf(cmd), args[0], experience.SessionMeta{}); err != nil {
				return err
			}
			return c.print(map[string]any{"deleted": args[0]}, func(w io.Writer) { fmt.Fprintln(w, "deleted", args[0]) })
		}),
	}
	cmd.AddCommand(create, list, show, del, c.orgMemberCmd(), c.orgRoleCmd())
	return cmd
}

// listFlag turns a repeatable flag into an optional list (nil: not given).
func listFlag(v []string) *[]string {
	if v == nil {
		return nil
	}
	out := splitList(v)
	return &out
}

func printOrg(w io.Writer, o *experience.Organization) {
	fmt.Fprintf(w, "org_id:       %s\nname:         %s\n", o.ID, o.Name)
	if o.Description != "" {
		fmt.Fprintf(w, "description:  %s\n", o.Description)
	}
	fmt.Fprintf(w, "mfa_required: %v\ndomains:      %s\njit_domains:  %s\njit_roles:    %s\n", o.MFARequired,
		strings.Join(o.Domains, " "), strings.Join(o.JITDomains, " "), strings.Join(o.JITRoles, " "))
}

func (c *cli) orgMemberCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "member", Short: "Manage an organization's members", RunE: unknownSubcommand}

	var roles []string
	add := &cobra.Command{
		Use:   "add ORG_ID USER_ID",
		Short: "Make a user a member of an organization",
		Args:  cobra.ExactArgs(2),
		RunE: c.withServices(func(cmd *cobra.Command, svc *app.Services, args []string) error {
			m, err := svc.Engine.AddOrgMember(ctxOf(cmd), args[0], args[1], splitList(roles), experience.SessionMeta{})
			if err != nil {
				return err
			}
			return c.print(m, func(w io.Writer) {
				fmt.Fprintf(w, "added %s to %s with roles: %s\n", m.UserID, m.OrgID, strings.Join(m.Roles, " "))
			})
		}),
	}
	add.Flags().StringSliceVar(&roles, "role", nil, "organization role (name) of the member (repeatable)")

	remove := &cobra.Command{
		Use:   "remove ORG_ID USER_ID",
		Short: "End a user's membership of an organization",
		Args:  cobra.ExactArgs(2),
		RunE: c.withServices(func(cmd *cobra.Command, svc *app.Services, args []string) error {
			if err := svc.Engine.RemoveOrgMember(ctxOf(cmd), args[0], args[1], experience.SessionMeta{}); err != nil {
				return err
			}
			return c.print(map[string]any{"removed": args[1], "org_id": args[0]}, func(w io.Writer) {
				fmt.Fprintf(w, "removed %s from %s\n", args[1], args[0])
			})
		}),
	}

	var listPage pageOpts
	list := &cobra.Command{
		Use:   "list ORG_ID",
		Short: "List an organization's members with their roles",
		Args:  cobra.ExactArgs(1),
		RunE: c.readOnly(func(cmd *cobra.Command, svc *app.Services, args []string) error {
			after, err := listPage.after()
			if err != nil {
				return err
			}
			members, next, err := svc.Engine.Members.List(ctxOf(cmd), args[0], after, listPage.limit)
			if err != nil {
				return err
			}
			return c.print(pageJSON("members", members, next), func(w io.Writer) {
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "USER ID\tUSERNAME\tEMAIL\tROLES")
				for _, m := range members {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", m.UserID, deref(m.Username), deref(m.PrimaryEmail), strings.Join(m.Roles, " "))
				}
				tw.Flush()
				moreHint(w, next)
			})
		}),
	}
	pageFlags(list, &listPage)
	cmd.AddCommand(add, remove, list)
	return cmd
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func (c *cli) orgRoleCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "role", Short: "Manage organization roles (shared by every organization)", RunE: unknownSubcommand}

	var name, description string
	var permissions []string
	create := &cobra.Command{
		Use:   "create",
		Short: "Create an organization role",
		Args:  cobra.NoArgs,
		RunE: c.withServices(func(cmd *cobra.Command, svc *app.Services, args []string) error {
			perms := splitList(permissions)
			if perms == nil {
				perms = []string{}
			}
			role, err := svc.Engine.CreateOrgRole(ctxOf(cmd), experience.RoleInput{Name: &name, Description: &description, Permissions: &perms},
				experience.SessionMeta{})
			if err != nil {
				return err
			}
			return c.print(role, func(w io.Writer) {
				fmt.Fprintf(w, "role_id:     %s\nname:        %s\npermissions: %s\n", role.ID, role.Name, strings.Join(role.Permissions, " "))
			})
		}),
	}
	create.Flags().StringVar(&name, "name", "", "name (required, unique)")
	create.Flags().StringVar(&description, "description", "", "description")
	create.Flags().StringSliceVar(&permissions, "permission", nil, "permission the role grants, e.g. invoices:read (repeatable)")
	_ = create.MarkFlagRequired("name")

	var listPage pageOpts
	list := &cobra.Command{
		Use:   "list",
		Short: "List organization roles, oldest first",
		Args:  cobra.NoArgs,
		RunE: c.readOnly(func(cmd *cobra.Command, svc *app.Services, args []string) error {
			after, err := listPage.after()
			if err != nil {
				return err
			}
			roles, next, err := svc.Engine.OrgRoles.List(ctxOf(cmd), after, listPage.limit)
			if err != nil {
				return err
			}
			return c.print(pageJSON("roles", roles, next), func(w io.Writer) {
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ROLE ID\tNAME\tPERMISSIONS")
				for _, r := range roles {
					fmt.Fprintf(tw, "%s\t%s\t%s\n", r.ID, r.Name, strings.Join(r.Permissions, " "))
				}
				tw.Flush()
				moreHint(w, next)
			})
		}),
	}
	pageFlags(list, &listPage)

	del := &cobra.Command{
		Use:   "delete ROLE_ID",
		Short: "Delete an organization role (members lose it)",
		Args:  cobra.ExactArgs(1),
		RunE: c.withServices(func(cmd *cobra.Command, svc *app.Services, args []string) error {
			if err := svc.Engine.DeleteOrgRole(ctxOf(cmd), args[0], experience.SessionMeta{}); err != nil {
				return err
			}
			return c.print(map[string]any{"deleted": args[0]}, func(w io.Writer) { fmt.Fprintln(w, "deleted", args[0]) })
		}),
	}
	cmd.AddCommand(create, list, del)
	return cmd
}
