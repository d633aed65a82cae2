//go:build !linux

package main

// releasePages is a no-op where madvise is not available: the ballast may
// then be resident if the runtime zeroed it.
func releasePages([]byte) {}
