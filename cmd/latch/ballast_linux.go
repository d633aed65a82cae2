package main

import "syscall"

// releasePages hands the pages of b back to the kernel (MADV_DONTNEED):
// they read as zeros and are no longer resident until written, which a
// ballast never is. The runtime zeroes a large allocation itself when it
// lands on heap pages used before (it may, at random, at startup), and
// that would make the whole ballast resident.
func releasePages(b []byte) {
	page := syscall.Getpagesize()
	n := len(b) / page * page
	if n == 0 {
		return
	}
	_ = syscall.Madvise(b[:n], syscall.MADV_DONTNEED)
}
