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
	"github.com/latch-dev/latch/buildinfo"
	"github.com/latch-dev/latch/config"
	"github.com/latch-dev/latch/fault"
)

func main() {
	c := newCLI(os.Stdout, os.Stderr, os.Getenv)
	c.environ = os.Environ
	os.Exit(c.run(os.Args[1:]))
}

// cli holds what every command shares; commands get it through closures
// instead of globals so tests can run the CLI in-process.
type cli struct {
	stdout, stderr io.Writer
	getenv         func(string) string
	// environ lists the environment (os.Environ), to warn about LATCH_*
	// variables that are no setting; nil in in-process tests.
	environ    func() []string
	configPath string
	output     string
	// addr is serve --addr: it stands for LATCH_ADDR.
	addr string
}

func newCLI(stdout, stderr io.Writer, getenv func(string) string) *cli {
	return &cli{stdout: stdout, stderr: stderr, getenv: getenv}
}

// newRoot builds the command tree (tests run it in-process).
func newRoot(stdout, stderr io.Writer, getenv func(string) string) *cobra.Command {
	return newCLI(stdout, stderr, getenv).root()
}

func (c *cli) root() *cobra.Command {
	root := &cobra.Command{
		Use:           "latch",
		Short:         "Latch: backend-to-backend password authentication and token service",
		Version:       buildinfo.Version(),
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetVersionTemplate("latch {{.Version}}\n")
	root.SetOut(c.stdout)
	root.SetErr(c.stderr)
	root.PersistentFlags().StringVar(&c.configPath, "config", "", "path to a YAML config file (LATCH_* environment variables override it)")
	root.PersistentFlags().StringVarP(&c.output, "output", "o", "text", "output format: text or json")
	root.AddCommand(c.serveCmd(), c.hashWorkerCmd(), c.hashRateCmd(), c.migrateCmd(), c.clientCmd(), c.connectorCmd(), c.userCmd(), c.orgCmd(), c.settingsCmd(), c.keysCmd(),
		c.versionCmd(), c.healthcheckCmd())
	for _, cmd := range root.Commands() {
		if cmd.HasSubCommands() && !cmd.Runnable() {
			cmd.RunE = unknownSubcommand
		}
	}
	return root
}

// unknownSubcommand runs a command group: alone it shows the group's help,
// with an argument it is a mistake (cobra would show the help and succeed,
// so a script with a typo would go on as if it had worked).
func unknownSubcommand(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return cmd.Help()
	}
	return fmt.Errorf("unknown command %q for %q (see %s --help)", args[0], cmd.CommandPath(), cmd.CommandPath())
}

// run executes the command line and returns the exit status. Errors go to
// stderr on one line, or as a JSON object under --output json.
func (c *cli) run(args []string) int {
	root := c.root()
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return 0
	}
	msg := strings.ReplaceAll(err.Error(), "\n", " ")
	if c.output == "json" || jsonRequested(args) {
		body := map[string]any{"error": msg}
		if fe, ok := fault.As(err); ok {
			body["error_code"] = fe.Code
		}
		_ = json.NewEncoder(c.stderr).Encode(body)
	} else {
		fmt.Fprintln(c.stderr, "latch: "+msg)
	}
	return 1
}

// jsonRequested finds --output json in arguments cobra could not parse
// (then c.output was never set).
func jsonRequested(args []string) bool {
	for i, a := range args {
		switch {
		case a == "--output=json" || a == "-ojson" || a == "-o=json":
			return true
		case (a == "--output" || a == "-o") && i+1 < len(args) && args[i+1] == "json":
			return true
		}
	}
	return false
}

func (c *cli) loadConfig() (config.Config, error) {
	return c.load(config.Load)
}

// loadExisting loads the configuration of a read-only command: it never
// generates a secret key.
func (c *cli) loadExisting() (config.Config, error) {
	return c.load(config.LoadExisting)
}

func (c *cli) load(load func(string, func(string) string) (config.Config, error)) (config.Config, error) {
	if err := c.checkOutput(); err != nil {
		return config.Config{}, err
	}
	if c.environ != nil {
		for _, name := range config.UnknownVariables(c.environ()) {
			c.logger("warn").Warn("ignoring an environment variable that is no Latch setting (a typo?)", slog.String("name", name))
		}
	}
	return load(c.configPath, c.env)
}

// env is the environment as the configuration sees it: flags that stand
// for a variable (serve --addr) win over it.
func (c *cli) env(name string) string {
	if name == "LATCH_ADDR" && c.addr != "" {
		return c.addr
	}
	return c.getenv(name)
}

func (c *cli) checkOutput() error {
	if c.output != "text" && c.output != "json" {
		return fmt.Errorf("--output must be text or json, got %q", c.output)
	}
	return nil
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

// readOnly wraps a command body that only reads: it opens the services
// without creating a database, a secret key or a signing key.
func (c *cli) readOnly(fn func(cmd *cobra.Command, svc *app.Services, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		cfg, err := c.loadExisting()
		if err != nil {
			return err
		}
		svc, err := app.OpenExisting(ctxOf(cmd), cfg, c.logger("warn"))
		if err != nil {
			return err
		}
		defer svc.Close()
		return fn(cmd, svc, args)
	}
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
			if err := c.checkOutput(); err != nil { // the one command that loads no config
				return err
			}
			v := buildinfo.Version()
			return c.print(map[string]string{"version": v}, func(w io.Writer) { fmt.Fprintln(w, "latch", v) })
		},
	}
}
