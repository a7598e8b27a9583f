package dmfpackage_test

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"testing"
	"unicode/utf16"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/fno-bridge/s3-fno/internal/imports/dmfpackage"
	"github.com/fno-bridge/s3-fno/internal/local/mototest"
	"github.com/fno-bridge/s3-fno/internal/local/pipelinetest"
	"github.com/fno-bridge/s3-fno/internal/shared/s3io"
	"github.com/fno-bridge/s3-fno/pkg/d365/d365test"
)

func TestMain(m *testing.M) { pipelinetest.Main(m) }

// counting is an S3 client that counts the bytes its GETs bring.
type counting struct {
	*s3.Client
	bytes, gets atomic.Int64
}

func (c *counting) GetObject(ctx context.Context, in *s3.GetObjectInput, o ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	out, err := c.Client.GetObject(ctx, in, o...)
	if err == nil {
		c.gets.Add(1)
		out.Body = countBody{out.Body, &c.bytes}
	}
	return out, err
}

type countBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (b countBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}

func zipOf(t *testing.T, files ...[2]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, f := range files {
		w, err := zw.Create(f[0])
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(w, f[1])
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func utf16LE(s string) string {
	out := []byte{0xFF, 0xFE}
	for _, u := range utf16.Encode([]rune(s)) {
		out = binary.LittleEndian.AppendUint16(out, u)
	}
	return string(out)
}

// manifestOf is the Manifest.xml of a package built by the emulator.
func manifestOf(t *testing.T, pkg []byte) string {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(pkg), int64(len(pkg)))
	if err != nil {
		t.Fatal(err)
	}
	f, err := zr.Open("Manifest.xml")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(f)
	return string(b)
}

// TestInspect: on moto, over ranged GETs of the exact version: packages are
// read (UTF-8 or UTF-16 manifests), everything else is refused with the
// reason, and a large package is not read whole.
func TestInspect(t *testing.T) {
	t.Parallel()
	c := &counting{Client: mototest.S3(t)}
	bucket := mototest.NewBucket(t)
	good := d365test.NewPackage("Opening balances", d365test.PackageEntity{Name: "Customer groups", Data: []byte("a\r\n")},
		d365test.PackageEntity{Name: "Vendor groups", Data: []byte("b\r\n")})
	noise := make([]byte, 3<<20)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range noise {
		noise[i] = byte(rng.Uint32()) // incompressible, so the zip is large too
	}
	large := d365test.NewPackage("Big", d365test.PackageEntity{Name: "Ledger journal", Data: noise})
	manifest := manifestOf(t, good)
	utf16Manifest := utf16LE(strings.Replace(manifest, `<?xml version="1.0" encoding="utf-8"?>`+"\n", "", 1))
	for _, tc := range []struct {
		name     string
		body     []byte
		entities string // want, joined by "|"
		reason   string // want a NotAPackageError holding this
		looks    bool   // and its LooksLikePackage
	}{
		{name: "package", body: good, entities: "Customer groups|Vendor groups"},
		{name: "large package", body: large, entities: "Ledger journal"},
		{name: "UTF-16 manifest", body: zipOf(t, [2]string{"Manifest.xml", utf16Manifest}, [2]string{"PackageHeader.xml", "<x/>"}),
			entities: "Customer groups|Vendor groups"},
		{name: "unreadable manifest", body: zipOf(t, [2]string{"Manifest.xml", "<nope"}, [2]string{"PackageHeader.xml", "<x/>"})},
		{name: "a CSV file", body: []byte("CUSTGROUP,NAME\r\n10,Retail\r\n"), reason: "not a zip file"},
		{name: "a workbook", body: zipOf(t, [2]string{"[Content_Types].xml", "<Types/>"}, [2]string{"xl/workbook.xml", "<workbook/>"}),
			reason: "no Manifest.xml at its root"},
		{name: "no header", body: zipOf(t, [2]string{"Manifest.xml", manifest}, [2]string{"data.csv", "x"}), reason: "no PackageHeader.xml at its root",
			looks: true},
		{name: "no manifest", body: zipOf(t, [2]string{"PackageHeader.xml", "<x/>"}), reason: "no Manifest.xml at its root", looks: true},
		{name: "in a folder", body: zipOf(t, [2]string{"pkg/Manifest.xml", manifest}, [2]string{"pkg/PackageHeader.xml", "<x/>"}),
			reason: "Manifest.xml is in a folder (pkg/Manifest.xml)", looks: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := "inbound/opening/" + tc.name + ".zip"
			v, etag := pipelinetest.Put(t, c.Client, bucket, key, tc.body)
			before := c.bytes.Load()
			p, err := dmfpackage.Inspect(context.Background(), c, s3io.Ref{Bucket: bucket, Key: key, VersionID: v, ETag: etag}, int64(len(tc.body)))
			if tc.reason != "" {
				var np *dmfpackage.NotAPackageError
				if !errors.As(err, &np) || !strings.Contains(np.Reason, tc.reason) || !strings.Contains(err.Error(), "Manifest.xml and PackageHeader.xml at its root") {
					t.Fatalf("err = %v, want not a package: %s", err, tc.reason)
				}
				if np.LooksLikePackage != tc.looks {
					t.Errorf("LooksLikePackage = %v, want %v (a template may wrap only what is no package at all)", np.LooksLikePackage, tc.looks)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(p.Entities, "|"); got != tc.entities || (tc.entities == "") != (p.Note != "") {
				t.Errorf("entities %q, note %q", got, p.Note)
			}
			if read := c.bytes.Load() - before; tc.name == "large package" && read > int64(len(tc.body))/8 {
				t.Errorf("read %d of %d bytes to inspect the package", read, len(tc.body))
			}
		})
	}
}

// TestInspectReadFailure: a version that cannot be read is an S3 error, not
// a file that is not a package.
func TestInspectReadFailure(t *testing.T) {
	t.Parallel()
	c := mototest.S3(t)
	bucket := mototest.NewBucket(t)
	_, err := dmfpackage.Inspect(context.Background(), c, s3io.Ref{Bucket: bucket, Key: "inbound/o/gone.zip", VersionID: "nope"}, 100)
	var np *dmfpackage.NotAPackageError
	if err == nil || errors.As(err, &np) {
		t.Fatalf("err = %v, want an S3 error", err)
	}
}
