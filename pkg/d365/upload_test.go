package d365_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fno-bridge/s3-fno/pkg/d365"
	"github.com/fno-bridge/s3-fno/pkg/d365/d365test"
)

// TestUploadPackageBlocks: a package larger than the block size goes up in
// blocks, committed in order by one block list, and is what ImportFromPackage
// reads; one no larger goes up in one Put Blob. Neither carries the token.
func TestUploadPackageBlocks(t *testing.T) {
	t.Parallel()
	e, c := newEmulatorClient(t, d365test.Options{})
	ctx := context.Background()
	pkg := packageZip(t, "Customer groups", "Customer groups.csv")
	for _, tc := range []struct {
		name              string
		block             int64
		unknownSize       bool // size -1: read to the end (a package built as it streams)
		wantBlocks, lists int
	}{
		{"blocks", 100, false, (len(pkg) + 99) / 100, 1},
		{"one block exactly", int64(len(pkg)), false, 0, 0},
		{"unknown size in blocks", 100, true, (len(pkg) + 99) / 100, 1},
		{"unknown size in one block", int64(len(pkg)) + 1, true, 0, 0},
		{"unknown size filling one block", int64(len(pkg)), true, 1, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before, beforeLists := e.Requests("blob-put-block"), e.Requests("blob-put-block-list")
			w, err := c.GetAzureWriteURL(ctx, tc.name+".zip")
			if err != nil {
				t.Fatal(err)
			}
			size := int64(len(pkg))
			if tc.unknownSize {
				size = -1
			}
			// A reader that hides its length, as a pipe does.
			if err := c.UploadPackageBlocks(ctx, w.BlobURL, io.MultiReader(bytes.NewReader(pkg)), size, tc.block); err != nil {
				t.Fatal(err)
			}
			if got, ok := e.Blob(tc.name + ".zip"); !ok || !bytes.Equal(got, pkg) {
				t.Fatalf("the blob is not the package (%d bytes, %v)", len(got), ok)
			}
			if n := e.Requests("blob-put-block") - before; n != tc.wantBlocks {
				t.Errorf("%d blocks, want %d", n, tc.wantBlocks)
			}
			if n := e.Requests("blob-put-block-list") - beforeLists; n != tc.lists {
				t.Errorf("%d block lists, want %d", n, tc.lists)
			}
			x, err := c.ImportFromPackage(ctx, d365.ImportPackageRequest{PackageURL: w.BlobURL, DefinitionGroupID: "G-" + tc.name,
				Execute: true, Overwrite: true, LegalEntityID: "USMF"})
			if err != nil || x == "" {
				t.Fatalf("ImportFromPackage = %q, %v", x, err)
			}
		})
	}
	if e.BlobSawToken() {
		t.Fatal("the bearer token was sent to the blob host")
	}
}

// TestUploadPackageBlocksRetriesABlock: a block whose answer is a 500 is
// sent again on its own; the package is whole.
func TestUploadPackageBlocksRetriesABlock(t *testing.T) {
	t.Parallel()
	e, c := newEmulatorClient(t, d365test.Options{})
	pkg := bytes.Repeat([]byte("0123456789"), 100)
	e.Inject(d365test.Fault{Endpoint: "blob-put-block", Count: 1, Status: http.StatusInternalServerError})
	w, err := c.GetAzureWriteURL(context.Background(), "r.zip")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.UploadPackageBlocks(context.Background(), w.BlobURL, bytes.NewReader(pkg), int64(len(pkg)), 300); err != nil {
		t.Fatal(err)
	}
	if got, _ := e.Blob("r.zip"); !bytes.Equal(got, pkg) || e.Requests("blob-put-block") != 5 {
		t.Fatalf("blob %d bytes after %d Put Block", len(got), e.Requests("blob-put-block"))
	}
}

// brokenReader fails after n bytes, like an S3 stream that broke.
type brokenReader struct{ n int }

func (b *brokenReader) Read(p []byte) (int, error) {
	if b.n <= 0 {
		return 0, errors.New("connection reset by S3")
	}
	k := min(len(p), b.n)
	b.n -= k
	return k, nil
}

// TestUploadPackageBlocksCommitsNothingPartial: a body that breaks (or ends
// early) commits nothing: the blob does not exist, only staged blocks.
func TestUploadPackageBlocksCommitsNothingPartial(t *testing.T) {
	t.Parallel()
	e, c := newEmulatorClient(t, d365test.Options{})
	for _, tc := range []struct {
		name string
		body io.Reader
		size int64
		want string
	}{
		{"broken", &brokenReader{n: 250}, 1000, "after 200 of 1000 bytes"},
		{"short", strings.NewReader(strings.Repeat("x", 250)), 1000, "after 200 of 1000 bytes"},
		{"broken, unknown size", &brokenReader{n: 250}, -1, "after 200 bytes"},
	} {
		w, err := c.GetAzureWriteURL(context.Background(), tc.name+".zip")
		if err != nil {
			t.Fatal(err)
		}
		err = c.UploadPackageBlocks(context.Background(), w.BlobURL, tc.body, tc.size, 100)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v", tc.name, err)
		}
		if _, ok := e.Blob(tc.name + ".zip"); ok || e.StagedBlocks(tc.name+".zip") != 2 {
			t.Errorf("%s: committed %v, staged %d", tc.name, ok, e.StagedBlocks(tc.name+".zip"))
		}
	}
}

// TestUploadSASExpired: a SAS that expired before or during the upload is
// ErrSASRefused (ask for a new URL), whether the upload is one Put Blob or
// blocks, and the error does not echo the signature.
func TestUploadSASExpired(t *testing.T) {
	t.Parallel()
	e, c := newEmulatorClient(t, d365test.Options{SASLifetime: time.Hour, TokenLifetime: 30 * 24 * time.Hour})
	pkg := bytes.Repeat([]byte("p"), 1000)
	for _, block := range []int64{100, 2000} {
		w, err := c.GetAzureWriteURL(context.Background(), "x.zip")
		if err != nil {
			t.Fatal(err)
		}
		e.Advance(time.Hour)
		err = c.UploadPackageBlocks(context.Background(), w.BlobURL, bytes.NewReader(pkg), int64(len(pkg)), block)
		var fe *d365.Error
		if !errors.Is(err, d365.ErrSASRefused) || !errors.As(err, &fe) || fe.StatusCode != http.StatusForbidden || fe.Code != "AuthenticationFailed" {
			t.Fatalf("block %d: err = %v, want ErrSASRefused", block, err)
		}
		if strings.Contains(err.Error(), "sig=") {
			t.Errorf("the error shows the signature: %v", err)
		}
	}
	// Only the blob host's 403 AuthenticationFailed is a refused SAS.
	e.Inject(d365test.Fault{Endpoint: "GetAzureWriteUrl", Count: 1, Status: http.StatusForbidden, Cause: "AuthenticationFailed"})
	if _, err := c.GetAzureWriteURL(context.Background(), "y.zip"); errors.Is(err, d365.ErrSASRefused) || err == nil {
		t.Errorf("F&O's 403: %v", err)
	}
}
