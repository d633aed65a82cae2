package main

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/latch-dev/latch/app"
)

func (c *cli) keysCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "keys", Short: "Manage token signing keys"}
	list := &cobra.Command{
		Use:   "list",
		Short: "List signing keys and their states",
		Args:  cobra.NoArgs,
		RunE: c.readOnly(func(cmd *cobra.Command, svc *app.Services, args []string) error {
			keys, err := svc.Tokens.Keys.List(ctxOf(cmd))
			if err != nil {
				return err
			}
			return c.print(keys, func(w io.Writer) {
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "KID\tALG\tSTATE\tPUBLISHED\tCREATED")
				for _, k := range keys {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%s\n", k.Kid, k.Alg, k.State, k.Published, k.CreatedAt.Format("2006-01-02 15:04"))
				}
				tw.Flush()
			})
		}),
	}
	rotate := &cobra.Command{
		Use:   "rotate",
		Short: "Activate the next signing key now (tokens signed before keep verifying until they expire)",
		Args:  cobra.NoArgs,
		RunE: c.withServices(func(cmd *cobra.Command, svc *app.Services, args []string) error {
			if _, err := svc.Tokens.Keys.Rotate(ctxOf(cmd), 0); err != nil {
				return err
			}
			keys, err := svc.Tokens.Keys.List(ctxOf(cmd))
			if err != nil {
				return err
			}
			var active string
			for _, k := range keys {
				if k.State == "active" {
					active = k.Kid
				}
			}
			return c.print(map[string]any{"active_kid": active, "keys": keys}, func(w io.Writer) {
				fmt.Fprintln(w, "rotated; active key is now", active)
			})
		}),
	}
	cmd.AddCommand(list, rotate)
	return cmd
}
