package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"github.com/latch-dev/latch/config"
)

// healthcheckCmd probes a running server, for container health checks: the
// image then needs no curl. It reads only the listen address (LATCH_ADDR or
// the config file), never the database or the keys.
func (c *cli) healthcheckCmd() *cobra.Command {
	var rawURL, path string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "healthcheck",
		Short: "Check that a local Latch server answers (exit 0) or not (exit 1)",
		Long: "Sends GET <path> to the server at LATCH_ADDR (a wildcard address is probed on loopback) and " +
			"succeeds on a 200. --path /readyz also checks its database.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := c.checkOutput(); err != nil {
				return err
			}
			if rawURL == "" {
				cfg, err := config.Peek(c.configPath, c.getenv)
				if err != nil {
					return err
				}
				u, err := probeURL(cfg.Addr, path)
				if err != nil {
					return err
				}
				rawURL = u
			}
			ctx, cancel := context.WithTimeout(ctxOf(cmd), timeout)
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
			if err != nil {
				return fmt.Errorf("healthcheck: %w", err)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return fmt.Errorf("healthcheck: %w", err)
			}
			defer resp.Body.Close()
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("healthcheck: GET %s: %s", rawURL, resp.Status)
			}
			return c.print(map[string]any{"status": "ok", "url": rawURL}, func(w io.Writer) { fmt.Fprintln(w, "ok", rawURL) })
		},
	}
	cmd.Flags().StringVar(&path, "path", "/healthz", "path to probe: /healthz (the process) or /readyz (and its database)")
	cmd.Flags().StringVar(&rawURL, "url", "", "full URL to probe instead of LATCH_ADDR + --path")
	cmd.Flags().DurationVar(&timeout, "timeout", 3*time.Second, "give up after this long")
	return cmd
}

// probeURL is the URL of path on a server listening on addr, as seen from
// the same host: a wildcard listener is reached on loopback.
func probeURL(addr, path string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("config: LATCH_ADDR: must be host:port, got %q", addr)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port) + path, nil
}
