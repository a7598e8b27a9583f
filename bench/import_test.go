package bench_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/fno-bridge/s3-fno/internal/imports/enqueue"
	"github.com/fno-bridge/s3-fno/internal/imports/importmsg"
	"github.com/fno-bridge/s3-fno/internal/local/pipelinetest"
	"github.com/fno-bridge/s3-fno/internal/local/s3fake"
	"github.com/fno-bridge/s3-fno/pkg/d365"
	"github.com/fno-bridge/s3-fno/pkg/d365/d365test"
)

const (
	benchBucket = "bench-data"
	actImport   = "5a1e0000-0000-4000-8000-000000000001"
	importRoute = "currencies"
	importEnt   = "Currencies"
)

var importRoutes = `[{"route":"` + importRoute + `","activityId":"` + actImport + `","entity":"` + importEnt + `","company":"USMF"}]`

// importRig is what both import benchmarks share: the S3 stand-in holding
// generated objects, and the F&O emulator whose enqueue endpoint is the
// sink (it hashes what it reads and keeps none of it).
type importRig struct {
	stand *s3fake.Server
	emu   *d365test.Emulator
	block []byte
	crc   string
	size  int64
}

func newImportRig(b *testing.B, size int64) *importRig {
	b.Helper()
	r := &importRig{stand: newStand(b), emu: d365test.NewT(b, d365test.Options{KeepEnqueuedBodyBytes: -1}),
		block: s3fake.Pattern(7), size: size}
	r.emu.AddActivity(actImport, d365test.Activity{Kind: d365test.File})
	r.crc = s3fake.PatternCRC(r.block, size)
	return r
}

// object puts the i-th generated file in inbound/ and returns the FIFO
// message the router would send for it.
func (r *importRig) object(i int, size int64) importmsg.File {
	return r.generated(importRoute, fmt.Sprintf("inbound/%s/bench-%06d.csv", importRoute, i), size)
}

// generated puts a generated file of size at key, on route, and returns
// the FIFO message naming it.
func (r *importRig) generated(route, key string, size int64) importmsg.File {
	crc := r.crc
	if size != r.size {
		crc = s3fake.PatternCRC(r.block, size)
	}
	v := r.stand.PutGenerated(benchBucket, key, r.block, size, crc).VersionID()
	return importmsg.File{Bucket: benchBucket, Key: key, VersionID: v, Size: size, Route: route, EventTime: time.Now().UTC()}
}

func fifoEvent(msgs ...importmsg.File) events.SQSEvent {
	var ev events.SQSEvent
	for i, m := range msgs {
		raw, _ := json.Marshal(m)
		ev.Records = append(ev.Records, pipelinetest.Message(fmt.Sprintf("fifo-%d", i), string(raw)))
	}
	return ev
}

// BenchmarkImportStreaming streams a generated file from the S3 stand-in
// to the emulator's enqueue endpoint through the real enqueue handler
// (enqueue.Handler.Handle on an SQS FIFO record naming the object), the
// real aws-sdk-go-v2 S3 client (GetObject checked by s3io.GetVerified,
// marker and ledger PutObjects) and the real d365 client. MB/s is the
// file's bytes per second; peak-heap-MiB and peak-RSS-MiB must not follow
// the size (the file streams).
func BenchmarkImportStreaming(b *testing.B) {
	for _, sz := range sizes {
		b.Run(sz.name, func(b *testing.B) {
			r := newImportRig(b, sz.n)
			env := map[string]string{"BUCKET": benchBucket, "ROUTES": importRoutes, "IMPORT_QUEUE_URL": "https://sqs/imports.fifo"}
			cfg, err := enqueue.ConfigFromEnv(func(k string) string { return env[k] })
			if err != nil {
				b.Fatal(err)
			}
			h, err := enqueue.New(cfg, r.stand.Client(b), pipelinetest.FnO(b, r.emu), &countingSender{}, quiet())
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			// Warm up: token, connections, first-use allocations.
			if resp, err := h.Handle(ctx, fifoEvent(r.object(-1, 64<<10))); err != nil || len(resp.BatchItemFailures) != 0 {
				b.Fatalf("warm-up: %v %+v", err, resp)
			}
			settle()
			peak := startHeapPeak()
			b.SetBytes(sz.n)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				ev := fifoEvent(r.object(i, sz.n))
				b.StartTimer()
				resp, err := h.Handle(ctx, ev)
				b.StopTimer()
				if err != nil || len(resp.BatchItemFailures) != 0 {
					b.Fatalf("handle: %v %+v", err, resp)
				}
				b.StartTimer()
			}
			b.StopTimer()
			reportMemory(b, peak)
			msgs := r.emu.Messages()
			if len(msgs) != b.N+1 || msgs[len(msgs)-1].Size != sz.n {
				b.Fatalf("F&O holds %d messages, the last of %d bytes; want %d of %d", len(msgs), msgs[len(msgs)-1].Size, b.N+1, sz.n)
			}
			if got := countKeys(r.stand.Keys(), benchBucket+"/_state/markers/"); got != b.N+1 {
				b.Fatalf("%d markers, want %d", got, b.N+1)
			}
		})
	}
}

// BenchmarkImportBaseline moves the same bytes between the same two
// servers with nothing in between: a plain net/http GET of the object from
// the S3 stand-in, its body handed as is to a plain POST to the emulator's
// enqueue endpoint (bearer token fetched once, outside the timing). It is
// the ceiling BenchmarkImportStreaming is compared with.
func BenchmarkImportBaseline(b *testing.B) {
	for _, sz := range sizes {
		b.Run(sz.name, func(b *testing.B) {
			r := newImportRig(b, sz.n)
			au, err := url.Parse(r.emu.AuthorityURL())
			if err != nil {
				b.Fatal(err)
			}
			cred, err := d365.SecretCredential(r.emu.ClientSecret())
			if err != nil {
				b.Fatal(err)
			}
			ts, err := d365.NewTokenSource(d365.Config{BaseURL: r.emu.URL(), TenantID: r.emu.TenantID(), ClientID: r.emu.ClientID(),
				AuthorityHost: au.Scheme + "://" + au.Host, Credential: cred, HTTPClient: r.emu.HTTPClient()})
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			token, err := ts.Token(ctx)
			if err != nil {
				b.Fatal(err)
			}
			get, post := r.stand.HTTPClient(), r.emu.HTTPClient()
			sink := r.emu.URL() + "/api/connector/enqueue/" + actImport + "?" + url.Values{"entity": {importEnt}, "company": {"USMF"}}.Encode()
			copyOne := func(m importmsg.File) {
				resp, err := get.Get(r.stand.URL() + "/" + m.Bucket + "/" + m.Key + "?versionId=" + m.VersionID)
				if err != nil || resp.StatusCode != http.StatusOK {
					b.Fatalf("get: %v %v", err, resp)
				}
				defer resp.Body.Close()
				req, err := http.NewRequestWithContext(ctx, http.MethodPost, sink, resp.Body)
				if err != nil {
					b.Fatal(err)
				}
				req.ContentLength = resp.ContentLength
				req.Header.Set("Authorization", "Bearer "+token)
				req.Header.Set("Content-Type", "application/octet-stream")
				ans, err := post.Do(req)
				if err != nil {
					b.Fatalf("post: %v", err)
				}
				io.Copy(io.Discard, ans.Body)
				ans.Body.Close()
				if ans.StatusCode != http.StatusOK {
					b.Fatalf("post: %s", ans.Status)
				}
			}
			copyOne(r.object(-1, 64<<10)) // warm up
			settle()
			peak := startHeapPeak()
			b.SetBytes(sz.n)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				m := r.object(i, sz.n)
				b.StartTimer()
				copyOne(m)
			}
			b.StopTimer()
			reportMemory(b, peak)
			msgs := r.emu.Messages()
			if len(msgs) != b.N+1 || msgs[len(msgs)-1].Size != sz.n {
				b.Fatalf("F&O holds %d messages; want %d of %s bytes", len(msgs), b.N+1, strconv.FormatInt(sz.n, 10))
			}
		})
	}
}
