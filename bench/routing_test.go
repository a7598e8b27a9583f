package bench_test

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/fno-bridge/s3-fno/internal/imports/release"
	"github.com/fno-bridge/s3-fno/internal/imports/router"
	"github.com/fno-bridge/s3-fno/internal/local/mototest"
	"github.com/fno-bridge/s3-fno/internal/local/pipelinetest"
)

// countingSender counts SendMessageBatch calls and entries. With next nil
// it answers every entry as sent (no wire crossed); otherwise it passes
// the call on (moto).
type countingSender struct {
	next           release.Sender
	calls, entries atomic.Int64
}

var _ release.Sender = (*countingSender)(nil)

func (c *countingSender) SendMessageBatch(ctx context.Context, in *sqs.SendMessageBatchInput, opts ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error) {
	c.calls.Add(1)
	c.entries.Add(int64(len(in.Entries)))
	if c.next != nil {
		return c.next.SendMessageBatch(ctx, in, opts...)
	}
	out := &sqs.SendMessageBatchOutput{}
	for i, e := range in.Entries {
		out.Successful = append(out.Successful, sqstypes.SendMessageBatchResultEntry{Id: e.Id,
			MessageId: aws.String(fmt.Sprintf("m-%d", i)), MD5OfMessageBody: aws.String("")})
	}
	return out, nil
}

// BenchmarkRouting feeds the router handler SQS batches of 10 S3
// ObjectCreated notifications of one route (one record each, size known, as
// S3 sends them) and reports the cost per record, and SendMessageBatch
// calls per batch (want 1: one release request for the route; the files
// themselves go out in the release pass, BenchmarkRelease). Logs go to a
// discard handler.
//
//   - fake-sqs: a counting in-process sender answers every entry as sent:
//     the router's own cost.
//   - moto-sqs: the same batches go over the wire to moto (counted by a
//     wrapper), so the SQS client's cost is in. moto's SendMessageBatch
//     on a FIFO queue slows down as the queue fills, so every batch gets
//     a fresh queue (made with the timer stopped); run it with a fixed
//     -benchtime (the harness uses 30x).
func BenchmarkRouting(b *testing.B) {
	for _, mode := range []string{"fake-sqs", "moto-sqs"} {
		b.Run(mode, func(b *testing.B) {
			stand := newStand(b)
			s3c := stand.Client(b)
			sender := &countingSender{}
			var mq *sqs.Client
			if mode == "moto-sqs" {
				mq = mototest.SQS(b)
				sender.next = mq
			}
			// newRouter builds a router for a new queue (on moto: a new
			// FIFO queue).
			var queue string
			newRouter := func() *router.Router {
				queue = "https://sqs.us-east-1.amazonaws.com/123456789012/bench-imports.fifo"
				if mq != nil {
					queue, _ = pipelinetest.NewFIFO(b, mq, pipelinetest.FIFO{})
				}
				env := map[string]string{"BUCKET": benchBucket, "ROUTES": importRoutes, "IMPORT_QUEUE_URL": queue}
				cfg, err := router.ConfigFromEnv(func(k string) string { return env[k] })
				if err != nil {
					b.Fatal(err)
				}
				r, err := router.New(cfg, s3c, sender, quiet())
				if err != nil {
					b.Fatal(err)
				}
				return r
			}
			r := newRouter()
			ctx := context.Background()
			batch := func(n int) events.SQSEvent {
				var ev events.SQSEvent
				for j := range 10 {
					key := fmt.Sprintf("inbound/%s/batch %06d/file+%d.csv", importRoute, n, j)
					ev.Records = append(ev.Records, pipelinetest.Message(fmt.Sprintf("arr-%d-%d", n, j),
						pipelinetest.S3Event(benchBucket, key, fmt.Sprintf("v%06d%d", n, j), fmt.Sprintf("%032x", n*10+j), 1234)))
				}
				return ev
			}
			if resp, err := r.Handle(ctx, batch(-1)); err != nil || len(resp.BatchItemFailures) != 0 {
				b.Fatalf("warm-up: %v %+v", err, resp)
			}
			evs := make([]events.SQSEvent, b.N)
			routers := make([]*router.Router, b.N)
			for i := range evs {
				evs[i] = batch(i)
				routers[i] = r
				if mq != nil {
					routers[i] = newRouter()
				}
			}
			calls0, entries0, puts0 := sender.calls.Load(), sender.entries.Load(), stand.Ops()["PutObject"]
			settle()
			var m0, m1 runtime.MemStats
			runtime.ReadMemStats(&m0)
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				resp, err := routers[i].Handle(ctx, evs[i])
				if err != nil || len(resp.BatchItemFailures) != 0 {
					b.Fatalf("batch %d: %v %+v", i, err, resp)
				}
			}
			elapsed := time.Since(start)
			b.StopTimer()
			runtime.ReadMemStats(&m1)
			records := float64(b.N * 10)
			calls := sender.calls.Load() - calls0
			b.ReportMetric(float64(elapsed.Nanoseconds())/records, "ns/record")
			b.ReportMetric(float64(m1.Mallocs-m0.Mallocs)/records, "allocs/record")
			b.ReportMetric(float64(m1.TotalAlloc-m0.TotalAlloc)/records, "B/record")
			b.ReportMetric(float64(calls)/float64(b.N), "SendMessageBatch/batch")
			b.ReportMetric(float64(stand.Ops()["PutObject"]-puts0)/records, "PutObject/record")
			if calls != int64(b.N) || sender.entries.Load()-entries0 != int64(b.N) {
				b.Fatalf("%d SendMessageBatch calls with %d entries for %d batches of one route", calls, sender.entries.Load()-entries0, b.N)
			}
			if mq != nil {
				if got := pipelinetest.Depth(b, mq, queue); got != 1 {
					b.Fatalf("the last FIFO queue holds %d messages, want the route's one release request", got)
				}
			}
		})
	}
}
