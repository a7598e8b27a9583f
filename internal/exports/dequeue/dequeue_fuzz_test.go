package dequeue_test

import (
	"archive/zip"
	"bytes"
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/fno-bridge/s3-fno/internal/exports/dequeue"
	"github.com/fno-bridge/s3-fno/pkg/d365"
)

// scriptFnO answers dequeue with the given raw answers, then 204; every
// download is the same small package.
type scriptFnO struct {
	answers [][]byte
	body    []byte
	acked   int
	s3      *memS3
	landed  func() int
}

func (s *scriptFnO) Dequeue(context.Context, string) (*d365.DequeuedFile, error) {
	if len(s.answers) == 0 {
		return nil, nil
	}
	raw := s.answers[0]
	s.answers = s.answers[1:]
	return d365.DecodeDequeue(200, raw)
}

func (s *scriptFnO) Download(context.Context, string) (*d365.Download, error) {
	return &d365.Download{Body: io.NopCloser(bytes.NewReader(s.body)), Size: int64(len(s.body))}, nil
}

func (s *scriptFnO) Ack(_ context.Context, _ string, d *d365.DequeuedFile) error {
	if d.HasFile() && s.landed() == 0 {
		panic("acknowledged before anything landed")
	}
	s.acked++
	return nil
}

func smallPackage() []byte {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for name, body := range map[string]string{
		"Manifest.xml": `<DataManagementPackageManifest><PackageEntityList><DataManagementPackageEntityData><EntityName>Customer groups</EntityName>` +
			`<InputFilePath>Customer groups.csv</InputFilePath></DataManagementPackageEntityData></PackageEntityList></DataManagementPackageManifest>`,
		"Customer groups.csv": "CUSTGROUPID\r\n10\r\n", "../escape.csv": "x",
	} {
		w, _ := zw.Create(name)
		io.WriteString(w, body)
	}
	zw.Close()
	return buf.Bytes()
}

// FuzzExportDequeueAnswer: any dequeue answer, delivered twice (as F&O
// re-delivers an unacknowledged export). The dequeue function lands a file
// before acknowledging it, at one key derived from the correlation ID (the
// second delivery lands nothing new), records an answer without a file
// (null DownloadLocation, IsDownLoadFileExist=false) under _state/ and
// acknowledges it only with ackMissingFile, refuses an unreadable answer
// without writing or acknowledging anything, and writes nowhere but the
// job's prefix and its state folder.
func FuzzExportDequeueAnswer(f *testing.F) {
	loc := `"https://contoso.operations.dynamics.com/api/connector/download/x?correlation-id=c&blob=b"`
	for _, s := range []string{
		`{"CorrelationId":"` + fuzzCorr + `","PopReceipt":"p","DownloadLocation":` + loc + `,"IsDownLoadFileExist":true,"FileDownLoadErrorMessage":null,"LastDequeueDateTime":null}`,
		`{"CorrelationId":"` + fuzzCorr + `","PopReceipt":"p","DownloadLocation":null,"IsDownLoadFileExist":true}`,
		`{"CorrelationId":"` + fuzzCorr + `","PopReceipt":"p","DownloadLocation":` + loc + `,"IsDownLoadFileExist":false,"FileDownLoadErrorMessage":"File not found"}`,
		`{"CorrelationId":"` + fuzzCorr + `","DownloadLocation":""}`,
		`{"CorrelationId":"../../inbound/customers/x","DownloadLocation":` + loc + `}`,
		`{"CorrelationId":"a/b\u0000c","DownloadLocation":` + loc + `}`,
		`{"CorrelationId":".","DownloadLocation":` + loc + `}`,
		`{"CorrelationId":"` + strings.Repeat("c", 300) + `","DownloadLocation":` + loc + `}`,
		`{"CorrelationId":"c","LastDequeueDateTime":"2026-03-01T10:30:00Z","DownloadLocation":` + loc + `}`,
		`{"CorrelationId":""}`, `{}`, `null`, `[]`, ``, `<html>`, `{"CorrelationId":1}`,
	} {
		f.Add([]byte(s), false, false)
		f.Add([]byte(s), true, true)
	}
	pkg := smallPackage()
	quiet := slog.New(slog.DiscardHandler)
	now := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, answer []byte, unpack, ackMissing bool) {
		s3c := newMemS3()
		landed := func() int {
			n := 0
			for _, k := range s3c.Keys() {
				if strings.HasPrefix(k, "b/outbound/cg/") {
					n++
				}
			}
			return n
		}
		fno := &scriptFnO{answers: [][]byte{answer, answer}, body: pkg, s3: s3c, landed: landed}
		h, err := dequeue.New(dequeue.Config{Bucket: "b", Now: func() time.Time { return now }, Logger: quiet}, fno, s3c)
		if err != nil {
			t.Fatal(err)
		}
		in := dequeue.Input{Job: "cg", ActivityID: testActivity, Unpack: unpack, AckMissingFile: ackMissing}
		sum, runErr := h.Run(context.Background(), in)
		// Every run is recorded for the status view; the checks below are
		// about the export's own objects.
		if _, ok := s3c.Get("b", "_state/status/jobs/cg/last-run.json"); !ok {
			t.Fatal("the run was not recorded")
		}
		s3c.DeletePrefix("b", "_state/status/")
		d, derr := d365.DecodeDequeue(200, answer)
		for _, k := range s3c.Keys() {
			if !strings.HasPrefix(k, "b/outbound/cg/") && !strings.HasPrefix(k, "b/_state/exports/cg/") {
				t.Fatalf("wrote %q", k)
			}
		}
		switch {
		case derr != nil:
			if runErr == nil || fno.acked != 0 || len(s3c.Keys()) != 0 {
				t.Fatalf("unreadable answer: err %v, acked %d, wrote %v", runErr, fno.acked, s3c.Keys())
			}
		case d == nil:
			if runErr != nil || !sum.QueueEmpty || len(s3c.Keys()) != 0 {
				t.Fatalf("empty answer: %+v %v", sum, runErr)
			}
		case d.HasFile():
			key := dequeue.ObjectKey("outbound/cg/", now, d.CorrelationID, "cg.zip")
			if _, ok := s3c.Get("b", key); !ok || runErr != nil || fno.acked != 2 {
				t.Fatalf("file not landed at %q and acknowledged twice: %v, acked %d, keys %v", key, runErr, fno.acked, s3c.Keys())
			}
			want := 1
			if unpack {
				want = 2 // the package and its one entity file; "../escape.csv" is refused
			}
			if n := landed(); n != want {
				t.Fatalf("%d objects landed for one export delivered twice, want %d: %v", n, want, s3c.Keys())
			}
		default:
			if _, ok := s3c.Get("b", h.MissingKey("cg", d.CorrelationID)); !ok || runErr != nil {
				t.Fatalf("answer without a file not recorded: %v", runErr)
			}
			if want := map[bool]int{true: 2, false: 0}[ackMissing]; fno.acked != want || landed() != 0 {
				t.Fatalf("answer without a file: acked %d (ackMissingFile %v), landed %d", fno.acked, ackMissing, landed())
			}
		}
	})
}
