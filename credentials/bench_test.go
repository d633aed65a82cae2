package credentials

import (
	"context"
	"testing"
)

// BenchmarkArgon2idHash reports the raw argon2id rate of this machine at the
// default parameters (m=19456 KiB, t=2, p=1), the ceiling sign-in throughput
// is measured against. "hashes/s" is per goroutine (one core); use
// BenchmarkArgon2idHashParallel for the whole machine.
func BenchmarkArgon2idHash(b *testing.B) {
	h := NewHasher(DefaultArgon2Params(), nil)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := h.Hash(ctx, "correct horse battery staple"); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "hashes/s")
}

// BenchmarkArgon2idHashParallel is the raw rate with GOMAXPROCS hashes at
// once, through a gate sized to the CPUs as the server runs it.
func BenchmarkArgon2idHashParallel(b *testing.B) {
	h := NewHasher(DefaultArgon2Params(), NewGate(0, 0, 0))
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := h.Hash(ctx, "correct horse battery staple"); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "hashes/s")
}
