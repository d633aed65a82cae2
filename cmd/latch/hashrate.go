package main

import (
	"fmt"
	"io"
	"runtime"
	"time"

	"github.com/spf13/cobra"

	"github.com/latch-dev/latch/config"
	"github.com/latch-dev/latch/credentials"
)

// hashRateCmd measures this machine's raw argon2id rate with the configured
// parameters: the ceiling of password sign-ins per second, which is what
// capacity planning and the LATCH_ARGON2_* trade-off need. It is also
// bench/authload's yardstick: measured by this executable, the yardstick
// runs the very code the server hashes with — measured here, two builds of
// the benchmark differing only in code unrelated to hashing hashed at 62
// and 91 per second, reproducibly, so a yardstick built elsewhere measures
// its build as much as the machine.
func (c *cli) hashRateCmd() *cobra.Command {
	var (
		workers          int
		duration, warmup time.Duration
	)
	cmd := &cobra.Command{
		Use:   "hash-rate",
		Short: "Measure this machine's argon2id hashes per second with the configured parameters",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// Only the hashing settings matter: no secret key is read or
			// made, no data directory touched.
			if err := c.checkOutput(); err != nil {
				return err
			}
			cfg, err := config.Peek(c.configPath, c.env)
			if err != nil {
				return err
			}
			if workers <= 0 {
				workers = runtime.NumCPU()
			}
			p := credentials.Argon2Params{MemoryKiB: cfg.Argon2MemoryKiB, Iterations: cfg.Argon2Iterations, Parallelism: cfg.Argon2Parallelism}
			if err := p.Validate(); err != nil {
				return fmt.Errorf("config: LATCH_ARGON2_*: %w", err)
			}
			// A fresh process faults its heap in over the first hashes:
			// measured from the start, it understates the rate.
			credentials.MeasureHashRate(p, workers, warmup)
			cpuBefore, faultsBefore := selfUsage()
			start := time.Now()
			rate := credentials.MeasureHashRate(p, workers, duration)
			elapsed := time.Since(start)
			cpuAfter, faultsAfter := selfUsage()
			hashes := rate * elapsed.Seconds()
			out := map[string]any{
				"params": p.String(), "workers": workers, "hashes": hashes, "seconds": elapsed.Seconds(),
				"hashes_per_second": rate, "cpu_seconds": (cpuAfter - cpuBefore).Seconds(), "minor_faults": faultsAfter - faultsBefore,
			}
			return c.print(out, func(w io.Writer) {
				fmt.Fprintf(w, "argon2id %s, %d workers: %.1f hashes/s", p, workers, rate)
				if hashes > 0 && cpuAfter > 0 {
					fmt.Fprintf(w, " (%.1f ms of CPU per hash)", float64(cpuAfter-cpuBefore)/hashes/1e6)
				}
				fmt.Fprintln(w)
			})
		},
	}
	cmd.Flags().IntVar(&workers, "workers", 0, "hashes at once (0: one per CPU)")
	cmd.Flags().DurationVar(&duration, "duration", 3*time.Second, "how long to measure")
	cmd.Flags().DurationVar(&warmup, "warmup", time.Second, "how long to hash before measuring")
	return cmd
}
