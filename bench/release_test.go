package bench_test

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/fno-bridge/s3-fno/internal/imports/importmsg"
	"github.com/fno-bridge/s3-fno/internal/imports/release"
	"github.com/fno-bridge/s3-fno/internal/shared/layout"
	"github.com/fno-bridge/s3-fno/internal/shared/routes"
)

// waiting are the numbers of files waiting in one route that
// BenchmarkRelease measures a pass over.
var waiting = []int{1, 100, 5000}

// BenchmarkRelease measures one release pass over a route with 1, 100 and
// 5,000 files waiting: the real release code and SDK client against the
// S3 fake's server face, a counting in-process sender for the FIFO queue.
// It reports the requests per released file (S3 listings, released-marker
// PutObjects, SendMessageBatch calls) and the pass's time per file: what
// keeping the drop order costs each file, on top of its settle window.
// Requests per file must not grow with the files waiting.
func BenchmarkRelease(b *testing.B) {
	for _, n := range waiting {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			stand := newStand(b)
			s3c := stand.Client(b)
			sender := &countingSender{}
			tbl, err := routes.Parse(importRoutes)
			if err != nil {
				b.Fatal(err)
			}
			l := routes.Config{Bucket: benchBucket, Routes: tbl, Layout: layout.Default()}
			rel, err := release.New(release.Config{Config: l, QueueURL: "https://sqs.us-east-1.amazonaws.com/123456789012/bench-imports.fifo"}, s3c, sender, quiet())
			if err != nil {
				b.Fatal(err)
			}
			// A minute ahead: every file has settled.
			rel = rel.WithClock(func() time.Time { return time.Now().Add(time.Minute) }, func(context.Context, time.Duration) error {
				panic("the pass waited")
			})
			for i := range n {
				stand.Put(benchBucket, fmt.Sprintf("inbound/%s/drop-%06d.csv", importRoute, i), []byte("row\n"), "", fmt.Sprintf("v%06d", i))
			}
			req := importmsg.Release{Route: importRoute, RequestedAt: time.Now().Add(-time.Hour)}
			ctx := context.Background()
			var elapsed time.Duration
			var requests, lists, puts, sends int
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				stand.DeletePrefix(benchBucket, l.Layout.ReleasedRoot()) // the files wait again
				ops0, calls0 := stand.Ops(), sender.calls.Load()
				settle()
				b.StartTimer()
				start := time.Now()
				res, err := rel.Pass(ctx, req)
				elapsed += time.Since(start)
				b.StopTimer()
				if err != nil || res.Released != n {
					b.Fatalf("pass = %+v, %v; want %d released", res, err, n)
				}
				ops := stand.Ops()
				lists += ops["ListObjectVersions"] - ops0["ListObjectVersions"] + ops["ListObjectsV2"] - ops0["ListObjectsV2"]
				puts += ops["PutObject"] - ops0["PutObject"]
				sends += int(sender.calls.Load() - calls0)
				b.StartTimer()
			}
			b.StopTimer()
			requests = lists + puts + sends
			files := float64(b.N * n)
			b.ReportMetric(float64(requests)/files, "requests/file")
			b.ReportMetric(float64(lists)/files, "lists/file")
			b.ReportMetric(float64(puts)/files, "PutObject/file")
			b.ReportMetric(float64(sends)/files, "SendMessageBatch/file")
			b.ReportMetric(float64(elapsed.Nanoseconds())/files, "ns/file")
			b.ReportMetric(float64(elapsed.Milliseconds())/float64(b.N), "ms/pass")
		})
	}
}
