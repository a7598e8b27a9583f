package dequeue_test

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"runtime/metrics"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/fno-bridge/s3-fno/internal/exports/dequeue"
	"github.com/fno-bridge/s3-fno/pkg/d365/d365test"
)

// heapPeak samples the heap in use (objects plus the unused part of
// in-use spans, i.e. MemStats.HeapInuse) from runtime/metrics, which does
// not stop the world, and keeps the highest value above a baseline taken
// after a GC.
type heapPeak struct {
	base, peak uint64
	stop, done chan struct{}
}

var heapSamples = []metrics.Sample{
	{Name: "/memory/classes/heap/objects:bytes"},
	{Name: "/memory/classes/heap/unused:bytes"},
}

func heapInuse(s []metrics.Sample) uint64 {
	metrics.Read(s)
	return s[0].Value.Uint64() + s[1].Value.Uint64()
}

func startHeapPeak() *heapPeak {
	runtime.GC()
	s := append([]metrics.Sample(nil), heapSamples...)
	p := &heapPeak{stop: make(chan struct{}), done: make(chan struct{})}
	p.base = heapInuse(s)
	p.peak = p.base
	go func() {
		defer close(p.done)
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		for {
			if v := heapInuse(s); v > p.peak {
				p.peak = v
			}
			select {
			case <-p.stop:
				return
			case <-t.C:
			}
		}
	}()
	return p
}

// Growth stops sampling and returns the peak's growth over the baseline.
func (p *heapPeak) Growth() uint64 {
	close(p.stop)
	<-p.done
	if p.peak < p.base {
		return 0
	}
	return p.peak - p.base
}

// TestMemoryDoesNotFollowSize lands a 64 MiB export (generated, never held)
// and checks that the heap grew by far less than the export: the bound is
// the upload's part buffers (5 MiB × (2+1), taken from the pool), with
// room for the GC's slack. It is a memory bound, not a timing.
func TestMemoryDoesNotFollowSize(t *testing.T) {
	// Not parallel: other tests' allocations would count.
	if testing.Short() {
		t.Skip("lands 64 MiB")
	}
	v := newEnv(t, d365test.Options{})
	const size = 64 << 20
	v.e.QueueExport(actA, d365test.Export{Size: size, Generate: pattern(size, 7)})
	h := v.handler(nil)

	p := startHeapPeak()
	sum, err := h.Run(context.Background(), dequeue.Input{Job: "mem", ActivityID: actA})
	growth := p.Growth()
	if err != nil || sum.Landed != 1 || sum.Bytes != size {
		t.Fatalf("run: %v, %+v", err, sum)
	}
	t.Logf("landed %d MiB; heap in use grew by %.1f MiB at peak", size>>20, float64(growth)/(1<<20))
	const bound = 48 << 20
	if growth > bound {
		t.Errorf("heap grew by %.1f MiB landing %d MiB; bound %d MiB", float64(growth)/(1<<20), size>>20, bound>>20)
	}
	if got, n := v.objectSum(sum.Files[0].Key); n != size || got != patternSum(size, 7) {
		t.Errorf("landed object differs (%d bytes)", n)
	}
}

// TestPartBuffersPooledAcrossExports lands two 16 MiB exports one after
// the other: the second allocates far less than one part, because the
// upload's part buffers come from the pool the first filled (the transfer
// manager allocated Concurrency + 1 parts and read the first part with
// io.ReadAll for every upload). Not parallel: it reads the process's
// allocation total.
func TestPartBuffersPooledAcrossExports(t *testing.T) {
	if testing.Short() {
		t.Skip("lands 32 MiB")
	}
	v := newEnv(t, d365test.Options{})
	const size = 16 << 20
	h := v.handler(func(c *dequeue.Config) { c.PartSize = 7 << 20 }) // a part size of its own: a pool no other test warmed
	land := func(seed byte) {
		v.e.QueueExport(actA, d365test.Export{Size: size, Generate: pattern(size, seed)})
		sum, err := h.Run(context.Background(), dequeue.Input{Job: "pool", ActivityID: actA})
		if err != nil || sum.Landed != 1 || sum.Bytes != size {
			t.Fatalf("run: %v, %+v", err, sum)
		}
	}
	land(1)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	land(2)
	runtime.ReadMemStats(&after)
	got := after.TotalAlloc - before.TotalAlloc
	t.Logf("the second 16 MiB export allocated %.1f MiB", float64(got)/(1<<20))
	if got > 7<<20 {
		t.Errorf("the second export allocated %.1f MiB, more than one 7 MiB part: its part buffers were not pooled", float64(got)/(1<<20))
	}
}

// BenchmarkLandExport lands generated exports of two sizes through the
// emulator and moto. bytes/op is the export size; peak-heap-MiB is the
// heap's growth at its peak, which stays flat while the size grows 32-fold.
// Run with: go test -run '^$' -bench LandExport -benchtime 1x ./internal/exports/dequeue/
func BenchmarkLandExport(b *testing.B) {
	for _, size := range []int64{16 << 20, 512 << 20} {
		b.Run(fmt.Sprintf("%dMiB", size>>20), func(b *testing.B) {
			v := newEnv(b, d365test.Options{})
			h := v.handler(func(c *dequeue.Config) { c.Logger = slog.New(slog.DiscardHandler) })
			b.SetBytes(size)
			b.ReportAllocs()
			var worst uint64
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				v.e.QueueExport(actA, d365test.Export{Size: size, Generate: pattern(size, byte(i))})
				p := startHeapPeak()
				b.StartTimer()
				sum, err := h.Run(context.Background(), dequeue.Input{Job: "bench", ActivityID: actA})
				b.StopTimer()
				worst = max(worst, p.Growth())
				if err != nil || sum.Landed != 1 || sum.Bytes != size {
					b.Fatalf("run: %v, %+v", err, sum)
				}
				// Keep moto's memory flat between iterations (the bucket is
				// versioned: delete the version itself).
				key := sum.Files[0].Key
				head, err := v.s3.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: &v.bucket, Key: &key})
				if err != nil {
					b.Fatal(err)
				}
				if _, err := v.s3.DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: &v.bucket, Key: &key, VersionId: head.VersionId}); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			b.ReportMetric(float64(worst)/(1<<20), "peak-heap-MiB")
		})
	}
}
