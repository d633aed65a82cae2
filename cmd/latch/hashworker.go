package main

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/latch-dev/latch/config"
	"github.com/latch-dev/latch/credentials"
)

// hashWorkerCmd is the hash worker process `latch serve` starts (see
// credentials.HashWorker): hidden, since nobody but the server runs it, and
// speaking the worker protocol on the pipes the server gave it, one pair
// per slot.
func (c *cli) hashWorkerCmd() *cobra.Command {
	var (
		p       credentials.Argon2Params
		procs   int
		working int64
	)
	cmd := &cobra.Command{
		Use:    "hash-worker",
		Short:  "Compute password hashes for `latch serve` (started by it; not for direct use)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// The server decides when the worker ends (by closing its
			// input once drained, or by dying): a SIGTERM or Ctrl-C sent
			// to the whole process group must not cut the hashes of the
			// requests the server is still draining.
			signal.Ignore(syscall.SIGINT, syscall.SIGTERM)
			if c.getenv("GOMAXPROCS") == "" && procs > 0 {
				runtime.GOMAXPROCS(procs)
			}
			log := c.logger("warn").With("process", "hash-worker")
			ballast := keepHashMemoryHot(working, c.getenv, log)
			defer runtime.KeepAlive(ballast)
			return credentials.ServeHashWorker(credentials.WorkerSlots(procs), p)
		},
	}
	f := cmd.Flags()
	f.Uint32Var(&p.MemoryKiB, "argon2-memory-kib", 0, "argon2id memory of new hashes (KiB)")
	f.Uint32Var(&p.Iterations, "argon2-iterations", 0, "argon2id passes of new hashes")
	f.Uint8Var(&p.Parallelism, "argon2-parallelism", 0, "argon2id lanes of new hashes")
	f.IntVar(&procs, "slots", 1, "the hashes the server's gate runs at once: slots, and GOMAXPROCS")
	f.Int64Var(&working, "working-set-bytes", 0, "the memory the hashes in flight may hold (sizes the GC ballast)")
	return cmd
}

// hashWorkerCommand returns how `latch serve` starts its hash worker: this
// same executable, with the configuration's hashing parameters. GOMAXPROCS
// of the worker is the gate's budget, so that it runs exactly the hashes
// the gate admits, none waiting for a P and no P idle beside them.
func hashWorkerCommand(cfg config.Config) (command func() *exec.Cmd, slots int, err error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, 0, fmt.Errorf("hash worker: finding this executable: %w", err)
	}
	budget := cfg.HashConcurrency
	if budget <= 0 {
		budget = runtime.NumCPU()
	}
	args := []string{"hash-worker",
		"--argon2-memory-kib", strconv.FormatUint(uint64(cfg.Argon2MemoryKiB), 10),
		"--argon2-iterations", strconv.FormatUint(uint64(cfg.Argon2Iterations), 10),
		"--argon2-parallelism", strconv.FormatUint(uint64(cfg.Argon2Parallelism), 10),
		"--slots", strconv.Itoa(budget),
		"--working-set-bytes", strconv.FormatInt(heapLimit(cfg, runtime.NumCPU()), 10),
	}
	env := workerEnviron(os.Environ())
	return func() *exec.Cmd {
		cmd := exec.Command(exe, args...)
		cmd.Env = env
		return cmd
	}, budget, nil
}

// workerEnviron is the environment the hash worker gets: the Go runtime's
// variables (GOGC, GOMEMLIMIT, GOMAXPROCS, GODEBUG…), so that an operator's
// tuning reaches it, and nothing else — not the secret key, the database
// URL or any other credential, which hashing never needs.
func workerEnviron(environ []string) []string {
	var out []string
	for _, kv := range environ {
		if strings.HasPrefix(kv, "GO") {
			out = append(out, kv)
		}
	}
	return append(out, "LATCH_LOG_LEVEL=warn")
}
