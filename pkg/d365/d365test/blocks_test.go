package d365test_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fno-bridge/s3-fno/pkg/d365/d365test"
)

func blockID(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// putBlock stages one block of the blob at SAS URL u.
func (v *env) putBlock(u, id string, body []byte) result {
	v.t.Helper()
	return v.putBlob(u+"&comp=block&blockid="+strings.NewReplacer("+", "%2B", "/", "%2F", "=", "%3D").Replace(id), body)
}

func (v *env) putBlockList(u string, ids ...string) result {
	v.t.Helper()
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="utf-8"?><BlockList>`)
	for _, id := range ids {
		b.WriteString("<Latest>" + id + "</Latest>")
	}
	b.WriteString("</BlockList>")
	return v.putBlob(u+"&comp=blocklist", []byte(b.String()))
}

// TestBlockUpload: staged blocks are not the blob until a block list
// commits them, in the list's order; a list naming a block never staged,
// block IDs of different lengths and a bad ID are refused as by Azure.
func TestBlockUpload(t *testing.T) {
	t.Parallel()
	v := setup(t, d365test.Options{})
	_, u := v.writeURL("big.zip")
	for _, b := range []struct{ id, body string }{{"b-1", "world"}, {"b-0", "hello, "}} {
		if r := v.putBlock(u, blockID(b.id), []byte(b.body)); r.StatusCode != 201 || r.Header.Get("Content-MD5") == "" {
			t.Fatalf("Put Block %s: %d %s", b.id, r.StatusCode, r.body)
		}
	}
	if _, ok := v.e.Blob("big.zip"); ok || v.e.StagedBlocks("big.zip") != 2 {
		t.Fatalf("the blob exists before its block list (staged %d)", v.e.StagedBlocks("big.zip"))
	}
	if r := v.putBlock(u, blockID("b-10"), []byte("x")); r.StatusCode != 400 || !bytes.Contains(r.body, []byte("InvalidBlobOrBlock")) {
		t.Errorf("block ID of another length: %d %s", r.StatusCode, r.body)
	}
	if r := v.putBlob(u+"&comp=block&blockid=not*base64", []byte("x")); r.StatusCode != 400 {
		t.Errorf("bad block ID: %d %s", r.StatusCode, r.body)
	}
	if r := v.putBlockList(u, blockID("b-0"), blockID("b-9")); r.StatusCode != 400 || !bytes.Contains(r.body, []byte("InvalidBlockList")) {
		t.Errorf("a list naming an unstaged block: %d %s", r.StatusCode, r.body)
	}
	if r := v.putBlockList(u, blockID("b-0"), blockID("b-1")); r.StatusCode != 201 || r.Header.Get("ETag") == "" {
		t.Fatalf("Put Block List: %d %s", r.StatusCode, r.body)
	}
	if got, ok := v.e.Blob("big.zip"); !ok || string(got) != "hello, world" || v.e.StagedBlocks("big.zip") != 0 {
		t.Fatalf("blob %q %v, staged %d", got, ok, v.e.StagedBlocks("big.zip"))
	}
	if n, ok := v.e.BlobSize("big.zip"); !ok || n != int64(len("hello, world")) {
		t.Errorf("BlobSize = %d, %v; want %d", n, ok, len("hello, world"))
	}
	if _, ok := v.e.BlobSize("none.zip"); ok {
		t.Error("BlobSize of a blob never stored says it exists")
	}
	if v.e.Requests("blob-put-block") != 4 || v.e.Requests("blob-put-block-list") != 2 || v.e.TotalRequests() != 1 {
		t.Errorf("requests: block %d, list %d, F&O %d", v.e.Requests("blob-put-block"), v.e.Requests("blob-put-block-list"), v.e.TotalRequests())
	}
	if v.e.BlobSawToken() {
		t.Error("the blob host saw a token")
	}
}

// TestPutBlobDiscardsStagedBlocks: as in Azure, a Put Blob discards the
// blob's uncommitted blocks; a block list naming one is then refused.
func TestPutBlobDiscardsStagedBlocks(t *testing.T) {
	t.Parallel()
	v := setup(t, d365test.Options{})
	_, u := v.writeURL("again.zip")
	if r := v.putBlock(u, blockID("b-0"), []byte("staged")); r.StatusCode != 201 {
		t.Fatalf("Put Block: %d %s", r.StatusCode, r.body)
	}
	if r := v.putBlob(u, []byte("whole"), "x-ms-blob-type", "BlockBlob"); r.StatusCode != 201 {
		t.Fatalf("Put Blob: %d %s", r.StatusCode, r.body)
	}
	if n := v.e.StagedBlocks("again.zip"); n != 0 {
		t.Fatalf("%d staged blocks kept after Put Blob", n)
	}
	if r := v.putBlockList(u, blockID("b-0")); r.StatusCode != 400 || !bytes.Contains(r.body, []byte("InvalidBlockList")) {
		t.Errorf("a list naming a discarded block: %d %s", r.StatusCode, r.body)
	}
	if got, ok := v.e.Blob("again.zip"); !ok || string(got) != "whole" {
		t.Errorf("blob %q %v, want the Put Blob's", got, ok)
	}
}

// TestBlockUploadSASExpires: a block sent after the SAS expired is 403
// AuthenticationFailed with Azure's XML body, and so is its block list.
func TestBlockUploadSASExpires(t *testing.T) {
	t.Parallel()
	v := setup(t, d365test.Options{SASLifetime: time.Hour, TokenLifetime: 30 * 24 * time.Hour})
	_, u := v.writeURL("p.zip")
	if r := v.putBlock(u, blockID("0"), []byte("a")); r.StatusCode != 201 {
		t.Fatalf("before expiry: %d", r.StatusCode)
	}
	v.e.Advance(time.Hour)
	for _, r := range []result{v.putBlock(u, blockID("1"), []byte("b")), v.putBlockList(u, blockID("0"))} {
		if r.StatusCode != http.StatusForbidden || r.Header.Get("x-ms-error-code") != "AuthenticationFailed" ||
			!bytes.Contains(r.body, []byte("<Code>AuthenticationFailed</Code>")) || !bytes.Contains(r.body, []byte("Signature not valid in the specified time frame")) {
			t.Errorf("after expiry: %d %s", r.StatusCode, r.body)
		}
	}
	if _, ok := v.e.Blob("p.zip"); ok {
		t.Error("the blob was committed")
	}
}

// importPackage uploads a one-entity package and starts its import.
func (v *env) importPackage(group, blob string, entities ...string) string {
	v.t.Helper()
	var ents []d365test.PackageEntity
	for _, e := range entities {
		ents = append(ents, d365test.PackageEntity{Name: e, Data: []byte("x")})
	}
	return v.str("ImportFromPackage", map[string]any{"packageUrl": v.upload(blob, d365test.NewPackage(group, ents...)),
		"definitionGroupId": group, "executionId": "", "execute": true, "overwrite": true, "legalEntityId": "USMF"})
}

// TestParallelPackageImports: a package import started while another runs
// is accepted, then ends Failed with a lock error row (not an HTTP error):
// anywhere in the environment by default, within one data project with
// EnhancedParallelPackageImport. One started after the other ended runs,
// even when it was created while the other ran.
func TestParallelPackageImports(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name             string
		enhanced         bool
		otherProjectWins bool
	}{{"environment", false, false}, {"enhanced parallel", true, true}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			v := setup(t, d365test.Options{EnhancedParallelPackageImport: tc.enhanced})
			first := v.importPackage("Opening", "1.zip", "Customers")
			same := v.importPackage("Opening", "2.zip", "Customers")
			other := v.importPackage("Budgets", "3.zip", "Budget")
			v.e.RunToCompletion()
			status := func(id string) string {
				return v.str("GetExecutionSummaryStatus", map[string]string{"executionId": id})
			}
			if status(first) != "Succeeded" || status(same) != "Failed" {
				t.Fatalf("first %s, second of the same project %s", status(first), status(same))
			}
			if errs := v.str("GetExecutionErrors", map[string]string{"executionId": same}); !strings.Contains(errs, "locked by execution "+first) ||
				!strings.Contains(errs, "Parallel jobs for the same entity") {
				t.Errorf("errors %s", errs)
			}
			if want := map[bool]string{true: "Succeeded", false: "Failed"}[tc.otherProjectWins]; status(other) != want {
				t.Errorf("another data project: %s, want %s", status(other), want)
			}
			after := v.importPackage("Opening", "4.zip", "Customers")
			v.e.RunToCompletion()
			if status(after) != "Succeeded" {
				t.Errorf("an import after the first ended: %s", status(after))
			}
			// The lock is taken when an import starts: one created while
			// another runs, but starting after it ended, runs.
			running := v.importPackage("Opening", "5.zip", "Customers")
			v.e.Tick() // running is Executing
			queued := v.importPackage("Opening", "6.zip", "Customers")
			if status(running) != "Executing" {
				t.Fatalf("the first import is %s, want Executing", status(running))
			}
			v.e.RunToCompletion()
			if status(running) != "Succeeded" || status(queued) != "Succeeded" {
				t.Errorf("created while another ran, started after it ended: %s (the other %s)", status(queued), status(running))
			}
		})
	}
}

// TestPackageFinalStatuses: each final status a package execution can end
// in, with its errors and each entity's own staging error file.
func TestPackageFinalStatuses(t *testing.T) {
	t.Parallel()
	v := setup(t, d365test.Options{})
	for _, st := range []string{"Succeeded", "PartiallySucceeded", "Failed", "Canceled"} {
		v.e.Script(d365test.Rule{ActivityID: "G-" + st, Outcome: d365test.Outcome{ExecutionStatus: st,
			Errors:            []d365test.ExecutionError{{RecordId: "7", Field: "F", ErrorMessage: st}},
			StagingErrorFiles: map[string][]byte{"customers": []byte("staging of customers")},
			StagingErrorFile:  []byte("staging of any other"), TargetErrorKeysFiles: map[string][]byte{"Vendors": []byte("keys")}}})
		id := v.importPackage("G-"+st, st+".zip", "Customers", "Vendors")
		v.e.RunToCompletion()
		if got := v.str("GetExecutionSummaryStatus", map[string]string{"executionId": id}); got != st {
			t.Errorf("%s: status %s", st, got)
		}
		if got := v.str("GetExecutionErrors", map[string]string{"executionId": id}); !strings.Contains(got, `"ErrorMessage":"`+st+`"`) {
			t.Errorf("%s: errors %s", st, got)
		}
		for entity, want := range map[string]string{"Customers": "staging of customers", "Vendors": "staging of any other"} {
			u := v.str("GetImportStagingErrorFileUrl", map[string]string{"executionId": id, "entityName": entity})
			if r := v.do(context.Background(), http.MethodGet, u, nil); string(r.body) != want {
				t.Errorf("%s %s: staging file %q", st, entity, r.body)
			}
		}
		has := v.action("GenerateImportTargetErrorKeysFile", map[string]string{"executionId": id, "entityName": "Customers"})
		if string(has.value) != "false" {
			t.Errorf("%s: Customers has target keys: %s", st, has.value)
		}
	}
}
