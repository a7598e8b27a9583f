package bench_test

import (
	"context"
	"io"
	"os"
	"runtime/debug"
	"testing"

	"github.com/fno-bridge/s3-fno/internal/exports/dequeue"
	"github.com/fno-bridge/s3-fno/internal/local/pipelinetest"
	"github.com/fno-bridge/s3-fno/internal/local/s3fake"
	"github.com/fno-bridge/s3-fno/pkg/d365/d365test"
)

const actExport = "e0e00000-0000-4000-8000-000000000002"

// queueExport puts a generated export of size bytes in the emulator's
// queue; the emulator writes it while serving the download, never holding
// it.
func queueExport(e *d365test.Emulator, block []byte, size int64) string {
	return e.QueueExport(actExport, d365test.Export{Size: size, FileName: "bench.csv", Generate: func(w io.Writer) error {
		_, err := s3fake.WritePattern(w, block, size)
		return err
	}})
}

// BenchmarkExportLanding lands a generated export through the real dequeue
// handler (dequeue.Handler.Run: dequeue, download, idempotency marker,
// transfer-manager multipart upload with If-None-Match, marker update, ack)
// with the default part size and concurrency. The S3 side is the
// stand-in's multipart sink: parts are decoded (aws-chunked), counted and
// dropped. peak-heap-MiB should stay under part size × concurrency + 32 MiB
// whatever the size. The process gets the soft memory limit the dequeue
// function sets at start (dequeue.ApplyMemoryLimit, GOMEMLIMIT honoured),
// restored afterwards so the baseline runs without it.
func BenchmarkExportLanding(b *testing.B) {
	for _, sz := range sizes {
		b.Run(sz.name, func(b *testing.B) {
			stand := newStand(b)
			emu := d365test.NewT(b, d365test.Options{})
			h, err := dequeue.New(dequeue.Config{Bucket: benchBucket, Logger: quiet()}, pipelinetest.FnO(b, emu), stand.Client(b))
			if err != nil {
				b.Fatal(err)
			}
			prev := debug.SetMemoryLimit(-1)
			b.Cleanup(func() { debug.SetMemoryLimit(prev) })
			limit, _ := dequeue.ApplyMemoryLimit(h.Config(), os.Getenv)
			block := s3fake.Pattern(11)
			ctx := context.Background()
			in := dequeue.Input{Job: "bench", ActivityID: actExport}
			queueExport(emu, block, 64<<10) // warm up: token, connections
			if sum, err := h.Run(ctx, in); err != nil || sum.Landed != 1 {
				b.Fatalf("warm-up: %v %+v", err, sum)
			}
			settle()
			peak := startHeapPeak()
			sunk := stand.Sunk()
			b.SetBytes(sz.n)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				queueExport(emu, block, sz.n)
				b.StartTimer()
				sum, err := h.Run(ctx, in)
				b.StopTimer()
				if err != nil || sum.Landed != 1 || sum.Acked != 1 || sum.Bytes != sz.n {
					b.Fatalf("run: %v %+v", err, sum)
				}
				if o, ok := stand.Get(benchBucket, sum.Files[0].Key); !ok || o.Size() != sz.n {
					b.Fatalf("S3 holds %+v at %s (%v), want %d bytes", o, sum.Files[0].Key, ok, sz.n)
				}
				b.StartTimer()
			}
			b.StopTimer()
			reportMemory(b, peak)
			cfg := h.Config()
			b.ReportMetric(float64(cfg.PartSize)/(1<<20), "part-MiB")
			b.ReportMetric(float64(cfg.Concurrency), "concurrency")
			b.ReportMetric(float64(limit)/(1<<20), "memlimit-MiB")
			if got := stand.Sunk() - sunk; got != int64(b.N)*sz.n {
				b.Fatalf("the sink received %d bytes, want %d", got, int64(b.N)*sz.n)
			}
		})
	}
}

// BenchmarkExportBaseline reads the same generated export from the same
// emulator (dequeue, download, ack with the same d365 client) into
// io.Discard: the ceiling of BenchmarkExportLanding, which adds the S3
// upload.
func BenchmarkExportBaseline(b *testing.B) {
	for _, sz := range sizes {
		b.Run(sz.name, func(b *testing.B) {
			emu := d365test.NewT(b, d365test.Options{})
			c := pipelinetest.FnO(b, emu)
			block := s3fake.Pattern(11)
			ctx := context.Background()
			one := func() int64 {
				d, err := c.Dequeue(ctx, actExport)
				if err != nil || d == nil || d.DownloadLocation == nil {
					b.Fatalf("dequeue: %v %+v", err, d)
				}
				dl, err := c.Download(ctx, *d.DownloadLocation)
				if err != nil {
					b.Fatal(err)
				}
				n, err := io.Copy(io.Discard, dl.Body)
				dl.Body.Close()
				if err != nil {
					b.Fatal(err)
				}
				if err := c.Ack(ctx, actExport, d); err != nil {
					b.Fatal(err)
				}
				return n
			}
			queueExport(emu, block, 64<<10)
			one() // warm up
			settle()
			peak := startHeapPeak()
			b.SetBytes(sz.n)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				queueExport(emu, block, sz.n)
				b.StartTimer()
				if n := one(); n != sz.n {
					b.Fatalf("downloaded %d bytes, want %d", n, sz.n)
				}
			}
			b.StopTimer()
			reportMemory(b, peak)
		})
	}
}
