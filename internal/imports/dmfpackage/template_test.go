package dmfpackage_test

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/fno-bridge/s3-fno/internal/imports/dmfpackage"
	"github.com/fno-bridge/s3-fno/internal/local/mototest"
	"github.com/fno-bridge/s3-fno/internal/local/pipelinetest"
	"github.com/fno-bridge/s3-fno/internal/local/s3fake"
	"github.com/fno-bridge/s3-fno/internal/shared/layout"
	"github.com/fno-bridge/s3-fno/internal/shared/s3io"
	"github.com/fno-bridge/s3-fno/pkg/d365"
	"github.com/fno-bridge/s3-fno/pkg/d365/d365test"
)

// filesOf reads a zip's files.
func filesOf(t *testing.T, pkg []byte) map[string][]byte {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(pkg), int64(len(pkg)))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		out[f.Name], err = io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatalf("%s: %v", f.Name, err)
		}
	}
	return out
}

// templateFiles are the Manifest.xml and PackageHeader.xml of a package
// of the entities, as F&O's Data management workspace exports them.
func templateFiles(t *testing.T, entities ...d365test.PackageEntity) (manifest, header []byte) {
	f := filesOf(t, d365test.NewPackage("Customer groups", entities...))
	return f["Manifest.xml"], f["PackageHeader.xml"]
}

func putTemplate(t *testing.T, c *s3.Client, bucket, name string, manifest, header []byte) {
	t.Helper()
	if manifest != nil {
		pipelinetest.Put(t, c, bucket, layout.TemplateKey(name, "Manifest.xml"), manifest)
	}
	if header != nil {
		pipelinetest.Put(t, c, bucket, layout.TemplateKey(name, "PackageHeader.xml"), header)
	}
}

// TestLoadTemplate: a template of one entity is read from
// _config/templates/<name>/; one that cannot be used is a *TemplateError
// naming the file and why.
func TestLoadTemplate(t *testing.T) {
	t.Parallel()
	c := mototest.S3(t)
	bucket := mototest.NewBucket(t)
	one := d365test.PackageEntity{Name: "Customer groups", FileName: "Customer groups.csv"}
	manifest, header := templateFiles(t, one)
	two, _ := templateFiles(t, one, d365test.PackageEntity{Name: "Vendor groups"})
	utf16Manifest := []byte(utf16LE(strings.Replace(string(manifest), `<?xml version="1.0" encoding="utf-8"?>`+"\n", "", 1)))
	inFolder := bytes.Replace(manifest, []byte("<InputFilePath>Customer groups.csv"), []byte(`<InputFilePath>C:\data\Customer groups.csv`), 1)
	noInput := bytes.Replace(manifest, []byte("<InputFilePath>Customer groups.csv</InputFilePath>"), []byte("<InputFilePath />"), 1)
	for _, tc := range []struct {
		name             string
		manifest, header []byte
		file, reason     string // want a TemplateError about file, holding reason
	}{
		{name: "good", manifest: manifest, header: header},
		{name: "UTF-16", manifest: utf16Manifest, header: header},
		{name: "no manifest", header: header, file: "Manifest.xml", reason: "does not exist"},
		{name: "no header", manifest: manifest, file: "PackageHeader.xml", reason: "does not exist"},
		{name: "not XML", manifest: []byte("Customer groups"), header: header, file: "Manifest.xml", reason: "not a DataManagementPackageManifest"},
		{name: "header swapped", manifest: manifest, header: manifest, file: "PackageHeader.xml", reason: "not a DataManagementPackageHeader"},
		{name: "two entities", manifest: two, header: header, file: "Manifest.xml", reason: "names 2 entities"},
		{name: "a path", manifest: inFolder, header: header, file: "Manifest.xml", reason: "not a plain file name"},
		{name: "no input file", manifest: noInput, header: header, file: "Manifest.xml", reason: "has no InputFilePath"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			putTemplate(t, c, bucket, tc.name, tc.manifest, tc.header)
			tpl, err := dmfpackage.LoadTemplate(context.Background(), c, bucket, tc.name)
			if tc.reason == "" {
				if err != nil {
					t.Fatal(err)
				}
				if tpl.Entity != "Customer groups" || tpl.DataFile != "Customer groups.csv" || tpl.Versions[0] == "" || tpl.Versions[1] == "" {
					t.Fatalf("template %+v", tpl)
				}
				return
			}
			var te *dmfpackage.TemplateError
			wantKey := "s3://" + bucket + "/" + layout.TemplateKey(tc.name, tc.file)
			if !errors.As(err, &te) || te.Key != wantKey || !strings.Contains(te.Reason, tc.reason) || !strings.Contains(err.Error(), wantKey) {
				t.Fatalf("err = %v, want a template error about %s: %s", err, wantKey, tc.reason)
			}
		})
	}
}

// TestWrap: a plain file wrapped in a template is a package F&O's
// ImportFromPackage takes (here the emulator's, over HTTPS, after a block
// upload of unknown size): the template's two files and the data under
// the manifest's InputFilePath, stored, byte for byte.
func TestWrap(t *testing.T) {
	t.Parallel()
	c := mototest.S3(t)
	bucket := mototest.NewBucket(t)
	manifest, header := templateFiles(t, d365test.PackageEntity{Name: "Customer groups", FileName: "Customer groups.csv"})
	putTemplate(t, c, bucket, "cg", manifest, header)
	tpl, err := dmfpackage.LoadTemplate(context.Background(), c, bucket, "cg")
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("CUSTGROUP,NAME\r\n10,Retail\r\n"), 5000)
	pkg, err := io.ReadAll(tpl.Wrap(io.NopCloser(bytes.NewReader(data)), int64(len(data)), time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	files := filesOf(t, pkg)
	if len(files) != 3 || !bytes.Equal(files["Customer groups.csv"], data) || !bytes.Equal(files["Manifest.xml"], manifest) ||
		!bytes.Equal(files["PackageHeader.xml"], header) {
		t.Fatalf("package files %v", len(files))
	}
	zr, _ := zip.NewReader(bytes.NewReader(pkg), int64(len(pkg)))
	for _, f := range zr.File {
		if f.Method != zip.Store {
			t.Errorf("%s is compressed (method %d)", f.Name, f.Method)
		}
	}
	// What Inspect reads of it, and what F&O does with it.
	v, etag := pipelinetest.Put(t, c, bucket, "inbound/o/wrapped.zip", pkg)
	p, err := dmfpackage.Inspect(context.Background(), c, s3io.Ref{Bucket: bucket, Key: "inbound/o/wrapped.zip", VersionID: v, ETag: etag}, int64(len(pkg)))
	if err != nil || strings.Join(p.Entities, "|") != "Customer groups" {
		t.Fatalf("Inspect: %+v, %v", p, err)
	}
	emu := d365test.NewT(t, d365test.Options{})
	fno := pipelinetest.FnO(t, emu)
	w, err := fno.GetAzureWriteURL(context.Background(), "wrapped.zip")
	if err != nil {
		t.Fatal(err)
	}
	body := tpl.Wrap(io.NopCloser(bytes.NewReader(data)), int64(len(data)), time.Now())
	defer body.Close()
	if err := fno.UploadPackageBlocks(context.Background(), w.BlobURL, body, -1, 64<<10); err != nil {
		t.Fatal(err)
	}
	if _, err := fno.ImportFromPackage(context.Background(), d365.ImportPackageRequest{PackageURL: w.BlobURL, DefinitionGroupID: "CG",
		Execute: true, Overwrite: true, LegalEntityID: "USMF"}); err != nil {
		t.Fatalf("F&O refused the wrapped package: %v", err)
	}
}

// TestWrapBadData: data that breaks, or ends before or after its size,
// fails the package's read before its end (so an upload of it commits
// nothing); Close ends the writing without reading the rest.
func TestWrapBadData(t *testing.T) {
	t.Parallel()
	tpl := &dmfpackage.Template{Name: "t", Manifest: []byte("<m/>"), Header: []byte("<h/>"), Entity: "E", DataFile: "E.csv"}
	data := bytes.Repeat([]byte("x"), 100000)
	for _, tc := range []struct {
		name string
		body io.Reader
		size int64
		want string
	}{
		{"short", bytes.NewReader(data[:500]), int64(len(data)), "gave 500 bytes, not its 100000"},
		{"long", bytes.NewReader(data), 500, "gave 100000 bytes, not its 500"},
		{"broken", io.MultiReader(bytes.NewReader(data[:700]), errReader{}), int64(len(data)), "connection reset"},
	} {
		_, err := io.ReadAll(tpl.Wrap(io.NopCloser(tc.body), tc.size, time.Now()))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.want)
		}
	}
	closed := &closeCounter{Reader: bytes.NewReader(data)}
	r := tpl.Wrap(closed, int64(len(data)), time.Now())
	if _, err := io.ReadFull(r, make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil || closed.n != 1 {
		t.Fatalf("Close: %v, data closed %d times", err, closed.n)
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) {
	return 0, errors.New("read tcp: connection reset by peer")
}

type closeCounter struct {
	io.Reader
	n int
}

func (c *closeCounter) Close() error { c.n++; return nil }

// FuzzLoadTemplate: whatever the two template files hold, LoadTemplate
// answers a *TemplateError (never another error while S3 works, never a
// panic), or a template whose data file is a plain name other than the
// package's own files; and what it wraps is a zip of exactly the two files
// as stored and the data under that name.
func FuzzLoadTemplate(f *testing.F) {
	m, h := pipelinetest.TemplateFiles("Customer groups", "Customer groups", "Customer groups.csv")
	f.Add(m, h)
	f.Add(bytes.Replace(m, []byte("Customer groups.csv"), []byte("Manifest.xml"), 1), h)
	f.Add(bytes.Replace(m, []byte("Customer groups.csv"), []byte("a/b.csv"), 1), h)
	f.Add([]byte(`<DataManagementPackageManifest><PackageEntityList><DataManagementPackageEntityData><EntityName>E</EntityName>`+
		`<InputFilePath>E.csv</InputFilePath></DataManagementPackageEntityData></PackageEntityList></DataManagementPackageManifest>`),
		[]byte("<DataManagementPackageHeader/>"))
	f.Add([]byte(`<!DOCTYPE x [<!ENTITY a "aaaa">]><DataManagementPackageManifest>&a;</DataManagementPackageManifest>`), h)
	f.Add([]byte("\xff\xfe<\x00"), []byte{})
	f.Fuzz(func(t *testing.T, manifest, header []byte) {
		mem := s3fake.New()
		mem.Put("b", layout.TemplateKey("t", "Manifest.xml"), manifest, "", "")
		mem.Put("b", layout.TemplateKey("t", "PackageHeader.xml"), header, "", "")
		tpl, err := dmfpackage.LoadTemplate(context.Background(), mem, "b", "t")
		var te *dmfpackage.TemplateError
		if err != nil {
			if !errors.As(err, &te) || te.Reason == "" || !strings.HasPrefix(te.Key, "s3://b/_config/templates/t/") {
				t.Fatalf("err = %v, want a *TemplateError naming a template file", err)
			}
			return
		}
		if tpl.DataFile == "" || strings.ContainsAny(tpl.DataFile, `/\`) || strings.EqualFold(tpl.DataFile, "manifest.xml") ||
			strings.EqualFold(tpl.DataFile, "packageheader.xml") || tpl.Entity == "" {
			t.Fatalf("accepted template %+v", tpl)
		}
		pkg, err := io.ReadAll(tpl.Wrap(io.NopCloser(strings.NewReader("data")), 4, time.Time{}))
		if err != nil {
			t.Fatal(err)
		}
		files := filesOf(t, pkg)
		if len(files) != 3 || !bytes.Equal(files["Manifest.xml"], manifest) || !bytes.Equal(files["PackageHeader.xml"], header) ||
			string(files[tpl.DataFile]) != "data" {
			t.Fatalf("package of %d files", len(files))
		}
	})
}
