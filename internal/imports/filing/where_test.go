package filing_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/fno-bridge/s3-fno/internal/imports/filing"
	"github.com/fno-bridge/s3-fno/internal/imports/importmsg"
	"github.com/fno-bridge/s3-fno/internal/local/s3fake"
	"github.com/fno-bridge/s3-fno/internal/shared/layout"
	"github.com/fno-bridge/s3-fno/internal/shared/s3io"
)

// brokenIndex refuses every write under the where-index.
type brokenIndex struct{ *s3fake.S3 }

func (b brokenIndex) PutObject(ctx context.Context, in *s3.PutObjectInput, opt ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	if strings.HasPrefix(aws.ToString(in.Key), layout.Default().WhereRoot()) {
		return nil, errors.New("AccessDenied")
	}
	return b.S3.PutObject(ctx, in, opt...)
}

// TestIndexPointsAtTheFiledFile: filing a file writes its where-index
// pointer under its name, naming where it went, its document, its
// identity and what it replays; a pointer that cannot be written is
// logged and the file is filed all the same.
func TestIndexPointsAtTheFiledFile(t *testing.T) {
	t.Parallel()
	l := layout.Default()
	when := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	replay := &importmsg.Replay{Key: "failed/customers/2026/02/28/a.csv", Identity: "old"}
	for _, broken := range []bool{false, true} {
		mem := s3fake.New()
		mem.Put("b", "inbound/customers/sub/a.csv", []byte("x\n"), "", "v1")
		var c filing.S3 = mem
		if broken {
			c = brokenIndex{mem}
		}
		var logs strings.Builder
		obs := filing.Observers{Index: &filing.Index{S3: c, Bucket: "b", Layout: l, Log: slog.New(slog.NewJSONHandler(&logs, nil))}}
		err := filing.Reject(context.Background(), c, l, func() time.Time { return when }, slog.New(slog.DiscardHandler), obs, filing.Rejection{
			Src: s3io.Ref{Bucket: "b", Key: "inbound/customers/sub/a.csv", VersionID: "v1"}, Route: "customers", File: "sub/a.csv",
			Code: "fno-rejected", Detail: "no", ReplayOf: replay})
		if err != nil {
			t.Fatalf("broken index %v: %v", broken, err)
		}
		placed := "rejected/customers/2026/03/01/sub/a.csv"
		if _, ok := mem.Get("b", placed); !ok {
			t.Fatalf("not filed at %s: %v", placed, mem.Keys())
		}
		id := importmsg.Identity("b", "inbound/customers/sub/a.csv", "v1", "")
		o, ok := mem.Get("b", l.WhereKey("a.csv", id))
		if broken {
			if ok || !strings.Contains(logs.String(), "pointer not written") {
				t.Errorf("a refused pointer: written %v, logged %q", ok, logs.String())
			}
			continue
		}
		if !ok {
			t.Fatalf("no pointer at %s: %v", l.WhereKey("a.csv", id), mem.Keys())
		}
		var p filing.Pointer
		if err := json.Unmarshal(o.Body, &p); err != nil {
			t.Fatal(err)
		}
		want := filing.Pointer{Name: "a.csv", Route: "customers", SourceKey: "inbound/customers/sub/a.csv", SourceVersionID: "v1", Identity: id,
			Outcome: "rejected", Key: placed, Document: placed + layout.ReasonSuffix, Status: "fno-rejected", FiledAt: p.FiledAt, ReplayOf: replay}
		if p.FiledAt.IsZero() || p.ReplayOf == nil || *p.ReplayOf != *replay {
			t.Errorf("pointer %+v", p)
		}
		p.ReplayOf, want.ReplayOf = nil, nil
		if p != want {
			t.Errorf("pointer\n%+v\nwant\n%+v", p, want)
		}
	}
}
