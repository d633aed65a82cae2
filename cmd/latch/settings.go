package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/latch-dev/latch/app"
	"github.com/latch-dev/latch/experience"
)

func (c *cli) settingsCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "settings", Short: "Show or change the sign-in experience settings (policies)"}
	show := &cobra.Command{
		Use:   "show",
		Short: "Print the current settings as JSON",
		Args:  cobra.NoArgs,
		RunE: c.readOnly(func(cmd *cobra.Command, svc *app.Services, args []string) error {
			s, err := svc.Engine.Settings.Get(ctxOf(cmd))
			if err != nil {
				return err
			}
			return c.printSettings(s, svc)
		}),
	}
	var file string
	set := &cobra.Command{
		Use:   "set --file PATCH.json",
		Short: "Merge a JSON patch (RFC 7396) into the settings; prints the result",
		Args:  cobra.NoArgs,
		RunE: c.withServices(func(cmd *cobra.Command, svc *app.Services, args []string) error {
			var raw []byte
			var err error
			if file == "-" {
				raw, err = io.ReadAll(io.LimitReader(cmd.InOrStdin(), 1<<20))
			} else {
				raw, err = os.ReadFile(file)
			}
			if err != nil {
				return fmt.Errorf("read %s: %w", file, err)
			}
			s, err := svc.Engine.PatchSettings(ctxOf(cmd), raw, experience.SessionMeta{})
			if err != nil {
				return err
			}
			return c.printSettings(s, svc)
		}),
	}
	set.Flags().StringVar(&file, "file", "", "path of the JSON patch (- for standard input)")
	_ = set.MarkFlagRequired("file")
	cmd.AddCommand(show, set)
	return cmd
}

// printSettings prints the settings plus, under "connectors", which message
// connectors are configured: a code method without its connector answers
// 501 connector.not_found, and this is where an operator sees why.
func (c *cli) printSettings(s experience.Settings, svc *app.Services) error {
	raw, err := json.Marshal(s)
	if err != nil {
		return err
	}
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		return err
	}
	out["connectors"] = svc.Connectors.Describe()
	return c.printJSON(out)
}

// printJSON prints v as indented JSON whatever --output says: settings
// are JSON by nature.
func (c *cli) printJSON(v any) error {
	enc := json.NewEncoder(c.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
