// Command latch is the Latch server and its administration CLI.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/latch-dev/latch/app"
	"github.com/latch-dev/latch/config"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	if err := newRoot(os.Stdout, os.Stderr, os.Getenv).Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "latch: "+strings.ReplaceAll(err.Error(), "\n", " "))
		os.Exit(1)
	}
}

// cli holds what every command shares; commands get it through closures
// instead of globals so tests can run the CLI in-process.
type cli struct {
	stdout, stderr io.Writer
	getenv         func(string) string
	configPath     string
	output         string
}

func newRoot(stdout, stderr io.Writer, getenv func(string) string) *cobra.Command {
	c := &cli{stdout: stdout, stderr: stderr, getenv: getenv}
	root := &cobra.Command{
		Use:           "latch",
		Short:         "Latch: backend-to-backend password authentication and token service",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.PersistentFlags().StringVar(&c.configPath, "config", "", "path to a YAML config file (LATCH_* environment variables override it)")
	root.PersistentFlags().StringVarP(&c.output, "output", "o", "text", "output format: text or json")
	root.AddCommand(c.serveCmd(), c.migrateCmd(), c.clientCmd(), c.connectorCmd(), c.userCmd(), c.settingsCmd(), c.keysCmd(), c.versionCmd())
	return root
}

func (c *cli) loadConfig() (config.Config, error) {
	if c.output != "text" && c.output != "json" {
		return config.Config{}, fmt.Errorf("--output must be text or json, got %q", c.output)
	}
	return config.Load(c.configPath, c.getenv)
}

// logger writes JSON logs to stderr at the given level.
func (c *cli) logger(level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	return slog.New(slog.NewJSONHandler(c.stderr, &slog.HandlerOptions{Level: l}))
}

// open loads config and services for an administrative command.
func (c *cli) open(ctx context.Context) (*app.Services, error) {
	cfg, err := c.loadConfig()
	if err != nil {
		return nil, err
	}
	log := c.logger("warn")
	warnGeneratedKey(log, cfg)
	return app.Open(ctx, cfg, log, cfg.AutoMigrate)
}

// withServices wraps a command body that needs the domain services: it
// opens them (config, database, migrations as configured), runs fn and
// closes them.
func (c *cli) withServices(fn func(cmd *cobra.Command, svc *app.Services, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		svc, err := c.open(ctxOf(cmd))
		if err != nil {
			return err
		}
		defer svc.Close()
		return fn(cmd, svc, args)
	}
}

func warnGeneratedKey(log *slog.Logger, cfg config.Config) {
	if cfg.SecretKeyGenerated {
		log.Warn("generated a development secret key; set LATCH_SECRET_KEY in production",
			slog.String("path", cfg.DataDir+"/secret.key"))
	}
}

// print writes v as JSON or, in text mode, as the text function renders it.
func (c *cli) print(v any, text func(w io.Writer)) error {
	if c.output == "json" {
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	text(c.stdout)
	return nil
}

func (c *cli) versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if c.output != "text" && c.output != "json" { // the one command that loads no config
				return fmt.Errorf("--output must be text or json, got %q", c.output)
			}
			return c.print(map[string]string{"version": version}, func(w io.Writer) { fmt.Fprintln(w, "latch", version) })
		},
	}
}
