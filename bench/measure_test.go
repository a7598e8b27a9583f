package bench_test

import (
	"bufio"
	"log/slog"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fno-bridge/s3-fno/internal/local/mototest"
	"github.com/fno-bridge/s3-fno/internal/local/s3fake"
)

func TestMain(m *testing.M) {
	code := m.Run()
	mototest.Stop()
	os.Exit(code)
}

// Sizes of the streaming benchmarks, as sub-benchmark names.
var sizes = []struct {
	name string
	n    int64
}{{"16MiB", 16 << 20}, {"256MiB", 256 << 20}, {"1GiB", 1 << 30}}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// newStand starts the S3 fake's server face for one benchmark.
// BENCH_S3_CHECKSUM=off makes it return no checksums, so the client
// validates nothing (bench/run.sh's diagnostic import run).
func newStand(tb testing.TB) *s3fake.Server {
	return s3fake.NewServer(tb, s3fake.ServerOptions{NoChecksums: os.Getenv("BENCH_S3_CHECKSUM") == "off"})
}

// countKeys counts the keys (bucket/key) that start with prefix.
func countKeys(keys []string, prefix string) int {
	n := 0
	for _, k := range keys {
		if strings.HasPrefix(k, prefix) {
			n++
		}
	}
	return n
}

// heapPeak samples the heap in use (HeapInuse: objects, live or not yet
// collected, plus the unused part of in-use spans) through runtime/metrics,
// which does not stop the world, every millisecond, and keeps the highest
// value. It also keeps the highest live heap the GC measured
// (/gc/heap/live:bytes: what the last GC marked), which leaves out garbage
// waiting for the next cycle.
type heapPeak struct {
	peak, live atomic.Uint64
	stop, done chan struct{}
}

var heapSampleNames = []string{"/memory/classes/heap/objects:bytes", "/memory/classes/heap/unused:bytes", "/gc/heap/live:bytes"}

func heapInuse(s []metrics.Sample) uint64 {
	metrics.Read(s)
	return s[0].Value.Uint64() + s[1].Value.Uint64()
}

func startHeapPeak() *heapPeak {
	s := make([]metrics.Sample, len(heapSampleNames))
	for i, n := range heapSampleNames {
		s[i].Name = n
	}
	p := &heapPeak{stop: make(chan struct{}), done: make(chan struct{})}
	p.peak.Store(heapInuse(s))
	go func() {
		defer close(p.done)
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			if v := heapInuse(s); v > p.peak.Load() {
				p.peak.Store(v)
			}
			if v := s[2].Value.Uint64(); v > p.live.Load() {
				p.live.Store(v)
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

// Stop ends sampling.
func (p *heapPeak) Stop() *heapPeak {
	close(p.stop)
	<-p.done
	return p
}

// vmHWM is the process's peak resident set size (VmHWM in
// /proc/self/status) in bytes: the highest RSS since the process started,
// which is why the harness runs each sub-benchmark in its own process.
// 0 where /proc is missing.
func vmHWM() uint64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// reportMemory stops p and reports peak-heap-MiB (HeapInuse),
// peak-live-MiB (live heap at GC) and peak-RSS-MiB. Call it at the end of
// a (sub-)benchmark; peak RSS is the whole process's, setup included.
func reportMemory(b *testing.B, p *heapPeak) {
	p.Stop()
	b.ReportMetric(float64(p.peak.Load())/(1<<20), "peak-heap-MiB")
	b.ReportMetric(float64(p.live.Load())/(1<<20), "peak-live-MiB")
	b.ReportMetric(float64(vmHWM())/(1<<20), "peak-RSS-MiB")
}

// settle collects garbage so the next measurement starts from the live
// heap only.
func settle() {
	runtime.GC()
	runtime.GC()
}
