package bench_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/fno-bridge/s3-fno/internal/imports/enqueue"
	"github.com/fno-bridge/s3-fno/internal/imports/importmsg"
	"github.com/fno-bridge/s3-fno/internal/imports/ledger"
	"github.com/fno-bridge/s3-fno/internal/local/pipelinetest"
	"github.com/fno-bridge/s3-fno/internal/shared/layout"
	"github.com/fno-bridge/s3-fno/pkg/d365"
)

const (
	packageRoute = "groups"
	templateName = "customer-groups"
)

var packageRoutes = `[{"route":"` + packageRoute + `","kind":"dataProject","definitionGroupId":"Customer groups","legalEntityId":"USMF",` +
	`"packageTemplate":"` + templateName + `"}]`

// packageRig is what both package benchmarks share: the S3 stand-in
// holding generated plain files and the route's package template, and the
// emulator, whose blob store (TLS, another port than F&O's) is the sink.
type packageRig struct {
	*importRig
	fno *d365.Client
}

func newPackageRig(b *testing.B, size int64) *packageRig {
	b.Helper()
	r := &packageRig{importRig: newImportRig(b, size)}
	m, h := pipelinetest.TemplateFiles("Customer groups", "Customer groups", "Customer groups.csv")
	r.stand.Put(benchBucket, layout.TemplateKey(templateName, "Manifest.xml"), m, "", "")
	r.stand.Put(benchBucket, layout.TemplateKey(templateName, "PackageHeader.xml"), h, "", "")
	r.fno = pipelinetest.FnO(b, r.emu)
	return r
}

// plainFile puts the i-th generated plain file on the route and returns
// the FIFO message its release pass would send.
func (r *packageRig) plainFile(i int, size int64) importmsg.File {
	return r.generated(packageRoute, fmt.Sprintf("inbound/%s/groups-%06d.csv", packageRoute, i), size)
}

// BenchmarkPackageImport imports a generated plain file through the package
// API with the real enqueue handler (enqueue.Handler.Handle on the FIFO
// record a release pass sends, holding its scope's lock): the file is read
// from the S3 stand-in with the real SDK client (checksum verified while
// streaming), found to be no package (a ranged GET of its end), wrapped as
// it streams in a package built from the route's template (two GETs), and
// uploaded to the emulator's blob store in blocks of the default size
// (Put Block, Put Block List) at a URL from GetAzureWriteUrl, then
// imported by ImportFromPackage, with the marker, ledger record and lock
// updates. MB/s is the file's bytes per second; peak-heap-MiB and
// peak-RSS-MiB must not follow the size (the package is built as it goes
// up, one block held at a time).
func BenchmarkPackageImport(b *testing.B) {
	for _, sz := range sizes {
		b.Run(sz.name, func(b *testing.B) {
			r := newPackageRig(b, sz.n)
			env := map[string]string{"BUCKET": benchBucket, "ROUTES": packageRoutes, "IMPORT_QUEUE_URL": "https://sqs/imports.fifo"}
			cfg, err := enqueue.ConfigFromEnv(func(k string) string { return env[k] })
			if err != nil {
				b.Fatal(err)
			}
			// The ranged and template GETs carry no full-object checksum,
			// which the SDK's default logger would say on every one (the
			// functions send that line to their log at DEBUG).
			opts := r.stand.Client(b).Options()
			opts.DisableLogOutputChecksumValidationSkipped = true
			s3c := s3.New(opts)
			h, err := enqueue.New(cfg, s3c, r.fno, &countingSender{}, quiet())
			if err != nil {
				b.Fatal(err)
			}
			locks := &ledger.Store{S3: s3c, Bucket: benchBucket, Layout: cfg.Layout}
			ctx := context.Background()
			one := func(m importmsg.File) {
				if resp, err := h.Handle(ctx, fifoEvent(m)); err != nil || len(resp.BatchItemFailures) != 0 {
					b.Fatalf("handle: %v %+v", err, resp)
				}
			}
			take := func(m importmsg.File) { // what the release pass does
				now := time.Now().UTC()
				taken, err := locks.TakeLock(ctx, ledger.PackageLock{Scope: "environment", Route: packageRoute, Key: m.Key, VersionID: m.VersionID,
					Identity: m.Identity(), State: ledger.LockReleased, TakenAt: now, UpdatedAt: now})
				if err != nil || !taken {
					b.Fatalf("take the lock: %v %v", taken, err)
				}
			}
			free := func(m importmsg.File) { // what the poller does once the execution is final
				r.emu.RunToCompletion()
				if ok, err := locks.ReleaseLock(ctx, "environment", m.Identity()); err != nil || !ok {
					b.Fatalf("free the lock: %v %v", ok, err)
				}
			}
			warm := r.plainFile(-1, 64<<10) // token, connections, first-use allocations
			take(warm)
			one(warm)
			free(warm)
			settle()
			peak := startHeapPeak()
			b.SetBytes(sz.n)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				m := r.plainFile(i, sz.n)
				take(m)
				b.StartTimer()
				one(m)
				b.StopTimer()
				free(m)
				b.StartTimer()
			}
			b.StopTimer()
			reportMemory(b, peak)
			checkImported(b, r, sz.n)
		})
	}
}

// checkImported: every iteration's package reached F&O, as a package
// holding the whole file.
func checkImported(b *testing.B, r *packageRig, size int64) {
	b.Helper()
	xs := r.emu.Executions()
	if len(xs) != b.N+1 {
		b.Fatalf("F&O ran %d imports, want %d", len(xs), b.N+1)
	}
	last := xs[len(xs)-1]
	// Its size only: reading a blob of the largest size would raise this
	// process's peak RSS, which the next run of the sub-benchmark reports.
	n, ok := r.emu.BlobSize(last.PackageBlob)
	if !ok || n <= size || len(last.Entities) != 1 || last.Entities[0] != "Customer groups" {
		b.Fatalf("the last package: %d bytes (%v), entities %v; want more than the file's %d", n, ok, last.Entities, size)
	}
}

// BenchmarkPackageBaseline moves the same bytes between the same two
// servers with nothing in between: a plain net/http GET of the file from
// the S3 stand-in, read in blocks of the same size, each PUT as it is to
// the emulator's blob store (Put Block), then Put Block List, at a blob
// URL asked for outside the timing. It is the ceiling
// BenchmarkPackageImport is compared with.
func BenchmarkPackageBaseline(b *testing.B) {
	for _, sz := range sizes {
		b.Run(sz.name, func(b *testing.B) {
			r := newPackageRig(b, sz.n)
			ctx := context.Background()
			get, put := r.stand.HTTPClient(), r.emu.HTTPClient()
			copyOne := func(m importmsg.File, blobURL string) {
				resp, err := get.Get(r.stand.URL() + "/" + m.Bucket + "/" + m.Key + "?versionId=" + m.VersionID)
				if err != nil || resp.StatusCode != http.StatusOK {
					b.Fatalf("get: %v %v", err, resp)
				}
				defer resp.Body.Close()
				if err := putBlocks(ctx, put, blobURL, resp.Body, enqueue.DefaultBlockSize); err != nil {
					b.Fatal(err)
				}
			}
			writeURL := func(i int) string {
				w, err := r.fno.GetAzureWriteURL(ctx, fmt.Sprintf("baseline-%d.zip", i))
				if err != nil {
					b.Fatal(err)
				}
				return w.BlobURL
			}
			copyOne(r.plainFile(-1, 64<<10), writeURL(-1)) // warm up
			settle()
			peak := startHeapPeak()
			b.SetBytes(sz.n)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				m, u := r.plainFile(i, sz.n), writeURL(i)
				b.StartTimer()
				copyOne(m, u)
			}
			b.StopTimer()
			reportMemory(b, peak)
			if n, ok := r.emu.BlobSize(fmt.Sprintf("baseline-%d.zip", b.N-1)); !ok || n != sz.n {
				b.Fatalf("the last blob holds %d bytes (%v), want %d", n, ok, sz.n)
			}
		})
	}
}

// putBlocks is a plain block upload: blocks of blockSize read from body,
// each PUT in turn, then the block list.
func putBlocks(ctx context.Context, hc *http.Client, blobURL string, body io.Reader, blockSize int) error {
	buf := make([]byte, blockSize)
	var list strings.Builder
	list.WriteString(`<?xml version="1.0" encoding="utf-8"?><BlockList>`)
	for i := 0; ; i++ {
		n, err := io.ReadFull(body, buf)
		if n > 0 {
			id := base64.StdEncoding.EncodeToString(fmt.Appendf(nil, "block-%06d", i))
			if err := blobPut(ctx, hc, blobURL+"&comp=block&blockid="+url.QueryEscape(id), buf[:n]); err != nil {
				return err
			}
			list.WriteString("<Latest>" + id + "</Latest>")
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return fmt.Errorf("read: %w", err)
		}
	}
	list.WriteString("</BlockList>")
	return blobPut(ctx, hc, blobURL+"&comp=blocklist", []byte(list.String()))
}

func blobPut(ctx context.Context, hc *http.Client, u string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, u, bytes.NewReader(body))
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("put: %s", resp.Status)
	}
	return nil
}
