package bench_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"sort"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

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
// pooled multipart upload (internal/exports/s3upload) with If-None-Match,
// marker update, ack)
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

// BenchmarkExportBaseline is the landing's fair baseline: the same export
// from the same emulator (dequeue and download with the same d365 client)
// streamed to the same S3 fake with a plain multipart upload of the same
// part size and concurrency through the same SDK client:
// CreateMultipartUpload, then for each part an io.Copy of the download
// into the part's buffer and an UploadPart (at most concurrency in flight,
// the SDK's CRC32 on each, as the landing asks for), and
// CompleteMultipartUpload. No marker, no If-None-Match, no ack; its
// concurrency + 1 buffers are allocated once, outside the timing.
func BenchmarkExportBaseline(b *testing.B) {
	for _, sz := range sizes {
		b.Run(sz.name, func(b *testing.B) {
			stand := newStand(b)
			s3c := stand.Client(b)
			emu := d365test.NewT(b, d365test.Options{})
			c := pipelinetest.FnO(b, emu)
			part, conc := dequeue.DefaultPartSize, dequeue.DefaultConcurrency
			bufs := make(chan *bytes.Buffer, conc+1)
			for range conc + 1 {
				buf := new(bytes.Buffer)
				buf.Grow(int(part) + bytes.MinRead) // ReadFrom never grows it
				bufs <- buf
			}
			block := s3fake.Pattern(11)
			ctx := context.Background()
			n := 0
			one := func() int64 {
				d, err := c.Dequeue(ctx, actExport)
				if err != nil || d == nil || d.DownloadLocation == nil {
					b.Fatalf("dequeue: %v %+v", err, d)
				}
				dl, err := c.Download(ctx, *d.DownloadLocation)
				if err != nil {
					b.Fatal(err)
				}
				defer dl.Body.Close()
				n++
				key := fmt.Sprintf("baseline/%06d-bench.csv", n)
				up, err := s3c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String(benchBucket), Key: &key,
					ChecksumAlgorithm: s3types.ChecksumAlgorithmCrc32})
				if err != nil {
					b.Fatal(err)
				}
				var (
					wg    sync.WaitGroup
					mu    sync.Mutex
					parts []s3types.CompletedPart
					total int64
				)
				slots := make(chan struct{}, conc)
				for num := int32(1); ; num++ {
					buf := <-bufs
					buf.Reset()
					got, err := io.Copy(buf, io.LimitReader(dl.Body, part))
					if err != nil {
						b.Fatal(err)
					}
					if got == 0 {
						bufs <- buf
						break
					}
					total += got
					slots <- struct{}{}
					wg.Add(1)
					go func() {
						defer wg.Done()
						defer func() { <-slots; bufs <- buf }()
						out, err := s3c.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String(benchBucket), Key: &key, UploadId: up.UploadId,
							PartNumber: aws.Int32(num), Body: bytes.NewReader(buf.Bytes()), ContentLength: aws.Int64(got),
							ChecksumAlgorithm: s3types.ChecksumAlgorithmCrc32})
						if err != nil {
							b.Error(err)
							return
						}
						mu.Lock()
						parts = append(parts, s3types.CompletedPart{PartNumber: aws.Int32(num), ETag: out.ETag, ChecksumCRC32: out.ChecksumCRC32})
						mu.Unlock()
					}()
					if got < part {
						break
					}
				}
				wg.Wait()
				if b.Failed() {
					b.FailNow()
				}
				sort.Slice(parts, func(i, j int) bool { return *parts[i].PartNumber < *parts[j].PartNumber })
				if _, err := s3c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: aws.String(benchBucket), Key: &key,
					UploadId: up.UploadId, MultipartUpload: &s3types.CompletedMultipartUpload{Parts: parts}}); err != nil {
					b.Fatal(err)
				}
				return total
			}
			sunk := stand.Sunk()
			timeExports(b, emu, block, sz.n, one, "uploaded")
			if got, want := stand.Sunk()-sunk, int64(b.N)*sz.n+warmUpBytes; got != want {
				b.Fatalf("the sink received %d bytes, want %d (the warm-up's included)", got, want)
			}
		})
	}
}

// BenchmarkExportDownload reads the same generated export from the same
// emulator (dequeue, download, ack with the same d365 client) into
// io.Discard: what the F&O side alone allows, the second column of the
// export table.
func BenchmarkExportDownload(b *testing.B) {
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
			timeExports(b, emu, block, sz.n, one, "downloaded")
		})
	}
}

// warmUpBytes is the size of the export a benchmark moves before timing.
const warmUpBytes = 64 << 10

// timeExports times one export of size per op, each queued in the
// emulator outside the timing, after one small export that warms up the
// token, connections and first-use allocations; one moves an export and
// returns its bytes (verb says how, for the failure).
func timeExports(b *testing.B, emu *d365test.Emulator, block []byte, size int64, one func() int64, verb string) {
	queueExport(emu, block, warmUpBytes)
	one()
	settle()
	peak := startHeapPeak()
	b.SetBytes(size)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		queueExport(emu, block, size)
		b.StartTimer()
		if n := one(); n != size {
			b.Fatalf("%s %d bytes, want %d", verb, n, size)
		}
	}
	b.StopTimer()
	reportMemory(b, peak)
}
