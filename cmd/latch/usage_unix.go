//go:build unix

package main

import (
	"syscall"
	"time"
)

// selfUsage returns this process's user+system CPU time and minor page
// faults so far.
func selfUsage() (time.Duration, int64) {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0, 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), int64(ru.Minflt)
}
