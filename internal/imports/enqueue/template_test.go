package enqueue_test

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/fno-bridge/s3-fno/internal/imports/enqueue"
	"github.com/fno-bridge/s3-fno/internal/imports/filing"
	"github.com/fno-bridge/s3-fno/internal/local/pipelinetest"
	"github.com/fno-bridge/s3-fno/internal/shared/layout"
	"github.com/fno-bridge/s3-fno/pkg/d365/d365test"
)

// templateEnv is the package routes plus TemplateRoute ("groups").
var templateEnv = map[string]string{"ROUTES": pipelinetest.WithRoute(pipelinetest.PackageRoutes, pipelinetest.TemplateRoute)}

// unzip reads a zip's files.
func unzip(t *testing.T, b []byte) map[string][]byte {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatalf("not a zip: %v", err)
	}
	out := map[string][]byte{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		out[f.Name], _ = io.ReadAll(rc)
		rc.Close()
	}
	return out
}

// TestPlainFileWrappedInTemplate: on a route with a package template, a
// CSV is imported wrapped in a package built from the template as it
// streams (blocks of an upload whose size was not known beforehand): the
// blob F&O imports holds the template's two files and the CSV under the
// manifest's InputFilePath, and the marker says how it was wrapped.
func TestPlainFileWrappedInTemplate(t *testing.T) {
	t.Parallel()
	f := newPkgFixture(t, d365test.Options{}, templateEnv)
	pipelinetest.PutTemplate(t, f.w.S3, f.w.Bucket, pipelinetest.TemplateName)
	csv := bytes.Repeat([]byte("CUSTGROUP,NAME\r\n10,Retail\r\n"), 300)
	pipelinetest.Put(t, f.w.S3, f.w.Bucket, "inbound/groups/0001.csv", csv)
	f.passes(t, f.h, "groups")

	xs := f.emu.Executions()
	if len(xs) != 1 || xs[0].DefinitionGroupID != "Customer groups" || strings.Join(xs[0].Entities, "|") != "Customer groups" {
		t.Fatalf("executions %+v", xs)
	}
	blob, _ := f.emu.Blob(xs[0].PackageBlob)
	files := unzip(t, blob)
	manifest, header := pipelinetest.TemplateFiles("Customer groups", "Customer groups", "Customer groups.csv")
	if len(files) != 3 || !bytes.Equal(files["Customer groups.csv"], csv) || !bytes.Equal(files["Manifest.xml"], manifest) ||
		!bytes.Equal(files["PackageHeader.xml"], header) {
		t.Fatalf("the package F&O imported holds %d files", len(files))
	}
	if f.emu.Requests("blob-put-block") < 2 || f.emu.Requests("blob-put-block-list") != 1 || f.emu.Requests("blob-put") != 0 {
		t.Errorf("blocks %d, lists %d, single PUTs %d", f.emu.Requests("blob-put-block"), f.emu.Requests("blob-put-block-list"), f.emu.Requests("blob-put"))
	}
	mk, found, err := f.store.GetMarker(context.Background(), mustIdentity(t, f, "inbound/groups/0001.csv"))
	if err != nil || !found || mk.Wrapped == nil || mk.Wrapped.Template != "_config/templates/customer-groups/" ||
		mk.Wrapped.DataFile != "Customer groups.csv" || mk.Wrapped.ManifestVersion == "" || mk.Size != int64(len(csv)) {
		t.Fatalf("marker %+v (wrapped %+v) %v %v", mk, mk.Wrapped, found, err)
	}
}

// TestTemplateRouteTakesPackagesAsTheyAre: a data package dropped on a
// route with a template is imported as it is; a zip that holds package
// files in the wrong place is refused, not wrapped.
func TestTemplateRouteTakesPackagesAsTheyAre(t *testing.T) {
	t.Parallel()
	f := newPkgFixture(t, d365test.Options{}, templateEnv)
	pipelinetest.PutTemplate(t, f.w.S3, f.w.Bucket, pipelinetest.TemplateName)
	pipelinetest.Put(t, f.w.S3, f.w.Bucket, "inbound/groups/1 folder.zip", pipelinetest.ZipOf(t, map[string]string{
		"pkg/Manifest.xml": "<x/>", "pkg/PackageHeader.xml": "<x/>"}))
	time.Sleep(time.Second)
	pkg := pipelinetest.Package("Customer groups", "Customer groups", "Vendor groups")
	pipelinetest.Put(t, f.w.S3, f.w.Bucket, "inbound/groups/2 ready.zip", pkg)
	f.passes(t, f.h, "groups")

	day := time.Now().UTC().Format("2006/01/02")
	raw, ok := pipelinetest.Get(t, f.w.S3, f.w.Bucket, "rejected/groups/"+day+"/1 folder.zip"+layout.ReasonSuffix)
	var r filing.Reason
	if !ok || json.Unmarshal(raw, &r) != nil || r.Reason != "not-a-package" || !strings.Contains(r.Detail, "not wrapped in the route's package template") {
		t.Errorf("reason %s", raw)
	}
	xs := f.emu.Executions()
	if len(xs) != 1 {
		t.Fatalf("%d executions", len(xs))
	}
	if blob, _ := f.emu.Blob(xs[0].PackageBlob); !bytes.Equal(blob, pkg) || len(xs[0].Entities) != 2 {
		t.Errorf("the ready package was not imported as it is")
	}
}

// TestMissingTemplateFilesWait: while a route's template is missing, its
// plain files wait in inbound/ in order, unreleased and unrejected, an
// error names the route and the template's key, and the scope stays free
// for the other routes; once the template is stored, they go.
func TestMissingTemplateFilesWait(t *testing.T) {
	t.Parallel()
	f := newPkgFixture(t, d365test.Options{}, templateEnv)
	pipelinetest.Put(t, f.w.S3, f.w.Bucket, "inbound/groups/1.csv", []byte("ID,NAME\r\n1,A\r\n"))
	pipelinetest.Put(t, f.w.S3, f.w.Bucket, "inbound/groups/2.csv", []byte("ID,NAME\r\n2,B\r\n"))
	pipelinetest.Put(t, f.w.S3, f.w.Bucket, "inbound/opening/a.zip", pipelinetest.Package("Opening balances", "Customer groups"))
	f.passes(t, f.h, "groups", "opening")

	if in := f.keys(t, "inbound/groups/"); len(in) != 2 || len(f.keys(t, "rejected/")) != 0 || len(f.keys(t, "_state/released/groups/")) != 0 {
		t.Fatalf("inbound %v, rejected %v, released %v: the files must wait", in, f.keys(t, "rejected/"), f.keys(t, "_state/released/groups/"))
	}
	if xs := f.emu.Executions(); len(xs) != 1 || xs[0].DefinitionGroupID != "Opening balances" {
		t.Fatalf("executions %+v: the other route's package should have gone", xs)
	}
	if v := heldMetric(t, f.metrics, "groups"); v != 2 {
		t.Errorf("FilesHeld of groups = %v, want 2", v)
	}
	refusal := false
	for _, l := range f.logs.Lines() {
		if l["level"] == "ERROR" && l["route"] == "groups" && strings.HasSuffix(l["template"].(string), "/_config/templates/customer-groups/Manifest.xml") {
			refusal = true
		}
	}
	if !refusal {
		t.Errorf("no ERROR line names the route and the template's key:\n%s", f.logs.String())
	}
	// Fixed: the scope is free again (the opening import ended), and the
	// route's first file goes.
	f.emu.RunToCompletion()
	if _, err := f.store.ReleaseLock(context.Background(), "environment", f.lock(t, "environment").Identity); err != nil {
		t.Fatal(err)
	}
	pipelinetest.PutTemplate(t, f.w.S3, f.w.Bucket, pipelinetest.TemplateName)
	f.passes(t, f.h, "groups")
	if xs := f.emu.Executions(); len(xs) != 2 || xs[1].DefinitionGroupID != "Customer groups" {
		t.Fatalf("executions %+v", xs)
	}
	if l := f.lock(t, "environment"); l == nil || !strings.HasSuffix(l.Key, "/1.csv") {
		t.Errorf("lock %+v, want 1.csv's", l)
	}
}

// templateVanishes is the enqueue function's S3 client: the package
// template is deleted right after the release pass has read it, before
// the enqueue reads it again (someone removed it in between).
type templateVanishes struct {
	enqueue.S3
	c      *s3.Client
	mu     sync.Mutex
	reads  int
	bucket string
}

func (v *templateVanishes) GetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	if strings.HasPrefix(aws.ToString(in.Key), layout.TemplatesPrefix) {
		v.mu.Lock()
		v.reads++
		if v.reads == 3 { // the pass read both files; this is the enqueue's first
			for _, f := range []string{"Manifest.xml", "PackageHeader.xml"} {
				if _, err := v.c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &v.bucket, Key: aws.String(layout.TemplateKey(pipelinetest.TemplateName, f))}); err != nil {
					v.mu.Unlock()
					return nil, err
				}
			}
		}
		v.mu.Unlock()
	}
	return v.S3.GetObject(ctx, in, opts...)
}

// TestTemplateGoneBeforeTheImport: the template goes between the pass and
// the import: the released file is given back to inbound/ (no released
// marker, the scope's lock gone, nothing rejected, nothing sent to F&O),
// and the route's next pass holds it.
func TestTemplateGoneBeforeTheImport(t *testing.T) {
	t.Parallel()
	f := newPkgFixture(t, d365test.Options{}, templateEnv)
	pipelinetest.PutTemplate(t, f.w.S3, f.w.Bucket, pipelinetest.TemplateName)
	pipelinetest.Put(t, f.w.S3, f.w.Bucket, "inbound/groups/1.csv", []byte("ID,NAME\r\n1,A\r\n"))
	h, err := enqueue.New(f.cfg, &templateVanishes{S3: f.w.S3, c: f.w.S3, bucket: f.w.Bucket}, f.fno, f.w.SQS, pipelinetest.Quiet())
	if err != nil {
		t.Fatal(err)
	}
	f.passes(t, h, "groups")
	if in := f.keys(t, "inbound/groups/"); len(in) != 1 || len(f.keys(t, "rejected/")) != 0 || len(f.keys(t, "_state/released/")) != 0 ||
		len(f.keys(t, "_state/markers/")) != 0 {
		t.Fatalf("inbound %v, rejected %v, released %v, markers %v", in, f.keys(t, "rejected/"), f.keys(t, "_state/released/"), f.keys(t, "_state/markers/"))
	}
	if l := f.lock(t, "environment"); l != nil {
		t.Errorf("the scope is still held: %+v", l)
	}
	if f.emu.Requests("GetAzureWriteUrl") != 0 || len(f.emu.Executions()) != 0 {
		t.Error("something went to F&O")
	}
}

// templateReads counts the reads of package template files through it.
type templateReads struct {
	*s3.Client
	n atomic.Int32
}

func (c *templateReads) GetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	if strings.HasPrefix(aws.ToString(in.Key), layout.TemplatesPrefix) {
		c.n.Add(1)
	}
	return c.Client.GetObject(ctx, in, opts...)
}

// TestBusyScopeLeavesTheTemplateUnread: while another route's package
// holds the scope, a template route's passes hold its files without
// reading its template (an import can hold the scope for hours of
// passes); once the scope is free, the pass reads it and the file goes.
func TestBusyScopeLeavesTheTemplateUnread(t *testing.T) {
	t.Parallel()
	f := newPkgFixture(t, d365test.Options{}, templateEnv)
	pipelinetest.PutTemplate(t, f.w.S3, f.w.Bucket, pipelinetest.TemplateName)
	pipelinetest.Put(t, f.w.S3, f.w.Bucket, "inbound/opening/a.zip", pipelinetest.Package("Opening balances", "Customer groups"))
	f.passes(t, f.h, "opening")
	if l := f.lock(t, "environment"); l == nil || !strings.HasSuffix(l.Key, "/a.zip") {
		t.Fatalf("lock %+v, want the opening package's", l)
	}
	reads := &templateReads{Client: f.w.S3}
	h, err := enqueue.New(f.cfg, reads, f.fno, f.w.SQS, pipelinetest.Quiet())
	if err != nil {
		t.Fatal(err)
	}
	pipelinetest.Put(t, f.w.S3, f.w.Bucket, "inbound/groups/1.csv", []byte("ID,NAME\r\n1,A\r\n"))
	f.passes(t, h, "groups")
	f.passes(t, h, "groups")
	if n := reads.n.Load(); n != 0 || len(f.keys(t, "_state/released/groups/")) != 0 {
		t.Fatalf("%d template reads, released %v while the scope was busy: want none", n, f.keys(t, "_state/released/groups/"))
	}
	f.emu.RunToCompletion()
	if _, err := f.store.ReleaseLock(context.Background(), "environment", f.lock(t, "environment").Identity); err != nil {
		t.Fatal(err)
	}
	f.passes(t, h, "groups")
	if n := reads.n.Load(); n == 0 {
		t.Error("the pass that released the file did not read the template")
	}
	if xs := f.emu.Executions(); len(xs) != 2 || xs[1].DefinitionGroupID != "Customer groups" {
		t.Fatalf("executions %+v", xs)
	}
}
