package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/latch-dev/latch/app"
	"github.com/latch-dev/latch/buildinfo"
	"github.com/latch-dev/latch/config"
	"github.com/latch-dev/latch/credentials"
)

func (c *cli) serveCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the Latch HTTP server",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := c.loadConfig()
			if err != nil {
				return err
			}
			log := c.logger(cfg.LogLevel)
			warnGeneratedKey(log, cfg)
			var opts []app.OpenOption
			if cfg.HashWorker == config.HashWorkerProcess && runtime.GOOS == "windows" {
				// The worker's pipes are inherited file descriptors, which
				// Windows processes do not get (os/exec ExtraFiles).
				log.Warn("LATCH_HASH_WORKER=process is not available on Windows; hashing in the server")
				cfg.HashWorker = config.HashWorkerInline
			}
			if cfg.HashWorker == config.HashWorkerProcess {
				command, slots, err := hashWorkerCommand(cfg)
				if err != nil {
					return err
				}
				worker := credentials.NewHashWorker(command, slots, 0, log)
				// A worker that cannot start is found now, not at the
				// first sign-in; once running, one that dies is started
				// again.
				if err := worker.Start(); err != nil {
					return fmt.Errorf("hash worker: %w (LATCH_HASH_WORKER=inline hashes in the server instead)", err)
				}
				defer worker.Close() // if Open fails; Services.Close otherwise (twice is fine)
				opts = append(opts, app.WithHashWorker(worker))
			} else {
				// Hashing here: pace the GC for it and keep a P for
				// requests beside the hashes (see tuning.go).
				ballast := keepHashMemoryHot(heapLimit(cfg, runtime.NumCPU()), c.getenv, log)
				defer runtime.KeepAlive(ballast)
				leaveRoomForRequests(c.getenv)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			svc, err := app.Open(ctx, cfg, log, cfg.AutoMigrate, opts...)
			if err != nil {
				return err
			}
			defer svc.Close()
			ln, err := net.Listen("tcp", cfg.Addr)
			if err != nil {
				return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
			}
			go svc.Tokens.Keys.RunRotation(ctx, cfg.KeyRotationInterval, func(err error) {
				log.Error("automatic key rotation failed", slog.String("error", err.Error()))
			})
			go svc.RunHousekeeping(ctx, log, cfg.HousekeepingInterval)
			if cfg.PprofAddr != "" {
				go servePprof(ctx, cfg.PprofAddr, log)
			}
			srv := svc.NewServer(log)
			if cfg.MetricsAddr != "" {
				go serveSide(ctx, "metrics", cfg.MetricsAddr, srv.MetricsHandler(), log)
			}
			log.Info("latch listening", slog.String("addr", ln.Addr().String()), slog.String("issuer", cfg.Issuer),
				slog.String("database", string(svc.DB.Dialect)), slog.String("env", cfg.Env), slog.String("version", buildinfo.Version()))
			return srv.Serve(ctx, ln)
		},
	}
	cmd.Flags().StringVar(&c.addr, "addr", "", "listen address host:port (overrides LATCH_ADDR)")
	return cmd
}

func (c *cli) migrateCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "migrate",
		Short: "Apply pending database migrations",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := c.loadConfig()
			if err != nil {
				return err
			}
			applied, err := app.Migrate(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			if applied == nil {
				applied = []string{}
			}
			return c.print(map[string]any{"status": "up to date", "applied": applied, "pending": 0}, func(w io.Writer) {
				for _, id := range applied {
					fmt.Fprintln(w, "applied", id)
				}
				fmt.Fprintf(w, "database schema is up to date (%d migrations applied now)\n", len(applied))
			})
		},
	}
}

// ctxOf returns a command's context, never nil.
func ctxOf(cmd *cobra.Command) context.Context {
	if cmd.Context() != nil {
		return cmd.Context()
	}
	return context.Background()
}

// servePprof exposes net/http/pprof on a loopback address of its own, for
// profiling a live server without publishing the endpoints.
func servePprof(ctx context.Context, addr string, log *slog.Logger) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	serveSide(ctx, "pprof", addr, mux, log)
}

// serveSide runs a side listener (pprof, metrics) until ctx ends.
func serveSide(ctx context.Context, name, addr string, h http.Handler, log *slog.Logger) {
	srv := &http.Server{Addr: addr, Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	log.Info(name+" listening", slog.String("addr", addr))
	if err := srv.ListenAndServe(); err != nil && err != http.ErrServerClosed {
		log.Error(name+" listener failed", slog.String("error", err.Error()))
	}
}
