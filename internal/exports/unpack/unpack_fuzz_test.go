package unpack_test

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"testing"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/fno-bridge/s3-fno/internal/exports/s3upload"
	"github.com/fno-bridge/s3-fno/internal/exports/unpack"
)

// utf16BE encodes s as UTF-16BE with a BOM.
func utf16BE(s string) []byte {
	out := []byte{0xFE, 0xFF}
	for _, u := range utf16.Encode([]rune(s)) {
		out = append(out, byte(u>>8), byte(u))
	}
	return out
}

// FuzzReadManifest: any Manifest.xml text. The same document read as
// UTF-8, UTF-16LE and UTF-16BE (with BOMs, as F&O writes it) gives the same
// entities or fails in all three; an entity bomb or deep nesting is an error
// in bounded time, not an expansion.
func FuzzReadManifest(f *testing.F) {
	ents := []entity{{"Customer groups", "Customer groups.csv", ""}, {"Currencies", `C:\Temp\Currencies.csv`, ""}, {"Up", "../../evil.csv", ""}}
	for _, s := range []string{
		manifestXML(ents),
		`<?xml version="1.0" encoding="utf-8"?>` + manifestXML(ents[:1]),
		`<?xml version="1.0" encoding="utf-16"?>` + manifestXML(ents[:1]),
		`<?xml version="1.0" encoding="iso-8859-1"?>` + manifestXML(ents[:1]),
		`<DataManagementPackageManifest/>`, `<Other/>`, ``, ` `, `<`, `<DataManagementPackageManifest>`,
		`<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">` +
			`<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>` +
			`<DataManagementPackageManifest><PackageEntityList><DataManagementPackageEntityData><EntityName>&lol3;</EntityName></DataManagementPackageEntityData></PackageEntityList></DataManagementPackageManifest>`,
		`<!DOCTYPE x [<!ENTITY ext SYSTEM "file:///etc/passwd">]><DataManagementPackageManifest><x>&ext;</x></DataManagementPackageManifest>`,
		`<DataManagementPackageManifest>` + strings.Repeat(`<a>`, 2000) + strings.Repeat(`</a>`, 2000) + `</DataManagementPackageManifest>`,
		`<DataManagementPackageManifest><DataManagementPackageEntityData><EntityName>a</EntityName><EntityName>b</EntityName>` +
			`<InputFilePath>x.csv</InputFilePath><InputFilePath>y.csv</InputFilePath></DataManagementPackageEntityData></DataManagementPackageManifest>`,
		`<DataManagementPackageManifest><DataManagementPackageEntityData><EntityName><![CDATA[ a&b ]]></EntityName>` +
			`<InputFilePath>&#0;</InputFilePath></DataManagementPackageEntityData></DataManagementPackageManifest>`,
		`<x:DataManagementPackageManifest xmlns:x="urn:y"><x:DataManagementPackageEntityData><x:EntityName>n</x:EntityName></x:DataManagementPackageEntityData></x:DataManagementPackageManifest>`,
		"<DataManagementPackageManifest>\x00</DataManagementPackageManifest>",
	} {
		f.Add([]byte(s))
		f.Add(utf16LE(s))
	}
	f.Add([]byte{0xFF, 0xFE, '<'})        // odd UTF-16
	f.Add([]byte{0xFF, 0xFE, 0x00, 0xD8}) // lone surrogate
	f.Add(append([]byte{0xEF, 0xBB, 0xBF}, manifestXML(ents)...))
	f.Fuzz(func(t *testing.T, doc []byte) {
		start := time.Now()
		got, err := unpack.ReadManifest(bytes.NewReader(doc))
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("reading %d bytes took %s", len(doc), d)
		}
		if err == nil {
			for _, e := range got {
				if e.EntityName != strings.TrimSpace(e.EntityName) || e.InputFilePath != strings.TrimSpace(e.InputFilePath) {
					t.Fatalf("untrimmed entity %+v", e)
				}
			}
		}
		// Differential: the same text in the three encodings.
		if !utf8.Valid(doc) || bytes.HasPrefix(doc, []byte{0xEF, 0xBB, 0xBF}) || len(doc) > 16<<10 {
			return
		}
		for name, enc := range map[string][]byte{"UTF-16LE": utf16LE(string(doc)), "UTF-16BE": utf16BE(string(doc))} {
			other, oerr := unpack.ReadManifest(bytes.NewReader(enc))
			if (err == nil) != (oerr == nil) || fmt.Sprint(got) != fmt.Sprint(other) {
				t.Fatalf("UTF-8 read %v, %v; %s read %v, %v", got, err, name, other, oerr)
			}
		}
	})
}

// discardUploader counts what it would upload, refusing a body that does
// not match its ContentLength (S3 would).
type discardUploader struct {
	keys    []string
	lengths []int64
	budget  int64 // bytes still allowed in this run (a zip bomb stops here)
}

var errBudget = errors.New("test upload budget exhausted")

func (u *discardUploader) Upload(_ context.Context, in *s3upload.Input) (*s3upload.Output, error) {
	u.keys = append(u.keys, in.Key)
	u.lengths = append(u.lengths, in.ContentLength)
	if in.ContentLength < 0 {
		return nil, fmt.Errorf("negative ContentLength %d", in.ContentLength)
	}
	n, err := io.Copy(io.Discard, io.LimitReader(in.Body, u.budget+1))
	u.budget -= n
	if err != nil {
		return nil, fmt.Errorf("read body: %w", err) // the uploader wraps too
	}
	if u.budget < 0 {
		return nil, errBudget
	}
	if in.ContentLength != n {
		return nil, fmt.Errorf("ContentLength %d, body %d", in.ContentLength, n)
	}
	return &s3upload.Output{Size: n}, nil
}

// zipWith builds a zip whose entries are written with the given names and
// bodies (deflated), for the seeds.
func zipWith(entries ...[2]string) []byte {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		w, _ := zw.CreateHeader(&zip.FileHeader{Name: e[0], Method: zip.Deflate})
		io.WriteString(w, e[1])
	}
	zw.Close()
	return buf.Bytes()
}

// FuzzPackage: any bytes landed as an export package. Unpacking either
// writes entity files strictly under the target prefix (never a "..", "."
// or empty folder, never an absolute name: zip slip), or says the package
// is unusable (FormatError, so it is reported once and acknowledged rather
// than retried for ever).
func FuzzPackage(f *testing.F) {
	manifest := string(utf16LE(manifestXML([]entity{{"Customer groups", "Customer groups.csv", ""}, {"Evil", "../../../inbound/x/evil.csv", ""}})))
	f.Add(zipWith([2]string{"Manifest.xml", manifest}, [2]string{"PackageHeader.xml", packageHeader}, [2]string{"Customer groups.csv", "a,b\r\n"}))
	f.Add(zipWith([2]string{"Manifest.xml", manifest},
		[2]string{"../../../inbound/x/evil.csv", "slip"}, [2]string{"/abs.csv", "abs"}, [2]string{`..\..\win.csv`, "win"},
		[2]string{"a/../../b.csv", "b"}, [2]string{"./dot.csv", "d"}, [2]string{"sub//x.csv", "x"}, [2]string{"nul\x00.csv", "n"},
		[2]string{"ctl\x01.csv", "c"}, [2]string{`C:\temp\c.csv`, "c"}, [2]string{"dir/", ""}, [2]string{"ü€.csv", "u"}))
	f.Add(zipWith([2]string{"Manifest.xml", manifest}, [2]string{"bomb.csv", strings.Repeat("\x00", 1<<20)}))
	f.Add(zipWith([2]string{"manifest.XML", `<Wrong/>`}))
	f.Add(zipWith([2]string{"Customer groups.csv", "no manifest"}))
	f.Add([]byte("PK\x03\x04 truncated"))
	f.Add([]byte{})
	f.Add([]byte("not a zip at all"))
	// A stored entry whose header claims more than it holds.
	liar := zipWith([2]string{"Manifest.xml", manifest}, [2]string{"x.csv", "12345"})
	if i := bytes.LastIndex(liar, []byte("PK\x01\x02")); i > 0 {
		binary.LittleEndian.PutUint32(liar[i+24:], 0xFFFFFFF0) // uncompressed size in the central directory
	}
	f.Add(liar)
	f.Fuzz(func(t *testing.T, data []byte) {
		const prefix = "outbound/job/2026/03/01/c-job/"
		up := &discardUploader{budget: 32 << 20}
		res, err := unpack.Package(context.Background(), &memS3{data: data}, up,
			unpack.Source{Bucket: "b", Key: "outbound/job/2026/03/01/c-job.zip", Size: int64(len(data))},
			unpack.Target{Bucket: "b", Prefix: prefix})
		for i, k := range up.keys {
			rel, ok := strings.CutPrefix(k, prefix)
			if !ok || rel == "" || strings.HasPrefix(rel, "/") || path.Clean(rel) != rel || strings.ContainsAny(rel, "\\\x00") {
				t.Fatalf("entity file written at %q, outside (or not cleanly under) %q", k, prefix)
			}
			for _, seg := range strings.Split(rel, "/") {
				if seg == "" || seg == "." || seg == ".." {
					t.Fatalf("entity file key %q has a %q segment", k, seg)
				}
			}
			if up.lengths[i] < 0 {
				t.Fatalf("negative ContentLength for %q", k)
			}
		}
		if errors.Is(err, errBudget) {
			return // a large (bomb-like) entry: the fake stopped reading
		}
		var fe *unpack.FormatError
		if err != nil && !errors.As(err, &fe) {
			t.Fatalf("an unusable package is not a FormatError (it would be retried for ever): %v", err)
		}
		if err == nil && res == nil {
			t.Fatal("no result and no error")
		}
	})
}

// FuzzMetaValue: any entity label, job name or correlation ID becomes a
// printable-ASCII S3 metadata value from which the original can be read
// back.
func FuzzMetaValue(f *testing.F) {
	for _, s := range []string{"Customer groups", "100%", "ü€", "a\r\nb", "\x00", "\xff", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v := unpack.MetaValue(s)
		for i := 0; i < len(v); i++ {
			if v[i] < 0x20 || v[i] > 0x7e {
				t.Fatalf("MetaValue(%q) = %q holds byte %#x", s, v, v[i])
			}
		}
		if strings.Contains(s, "%") || v != s {
			// Percent-encoded: decode it back.
			var b []byte
			for i := 0; i < len(v); i++ {
				if v[i] == '%' && i+2 < len(v) {
					c, err := hex.DecodeString(v[i+1 : i+3])
					if err != nil {
						t.Fatalf("MetaValue(%q) = %q: bad escape", s, v)
					}
					b = append(b, c...)
					i += 2
					continue
				}
				b = append(b, v[i])
			}
			if string(b) != s {
				t.Fatalf("MetaValue(%q) = %q decodes to %q", s, v, b)
			}
		}
	})
}
