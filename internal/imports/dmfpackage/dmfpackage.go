// Package dmfpackage says whether a dropped file is a data package F&O's
// package API can import (a zip with Manifest.xml and PackageHeader.xml at
// its root) and which entities its manifest names, reading only the zip's
// central directory and Manifest.xml from S3 with ranged GETs of the exact
// version: never the whole package.
//
// A file that is not a package is refused here (NotAPackageError), unless
// its route names a package template (template.go): then a plain data file
// is wrapped, as it streams, into a package built from the template.
package dmfpackage

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf16"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/fno-bridge/s3-fno/internal/shared/s3io"
)

// Package is what a data package says about itself.
type Package struct {
	// DefinitionGroup is Manifest.xml's DefinitionGroupName.
	DefinitionGroup string
	// Entities are the manifest's EntityName values, in its order (F&O's
	// entity labels, which the error file actions take).
	Entities []string
	// Note says why the entities are unknown (Manifest.xml could not be
	// read; F&O has the last word on it), or is "".
	Note string
}

// NotAPackageError: the file is not a data package.
type NotAPackageError struct {
	Reason string // for people: what is wrong with it
	// LooksLikePackage: it is a zip holding Manifest.xml or
	// PackageHeader.xml (in a folder, or one without the other): a package
	// made wrongly, not a plain data file a template could wrap.
	LooksLikePackage bool
}

func (e *NotAPackageError) Error() string {
	return "not a data package: " + e.Reason + " (a data package is a .zip with Manifest.xml and PackageHeader.xml at its root, " +
		"as F&O's Data management workspace exports it)"
}

// maxManifest bounds the Manifest.xml read.
const maxManifest = 16 << 20

// Inspect reads the zip directory and the manifest of the object version
// ref (size bytes). It returns a *NotAPackageError for a file that is not a
// data package, and other errors for reads that failed (worth retrying).
func Inspect(ctx context.Context, c s3io.Getter, ref s3io.Ref, size int64) (*Package, error) {
	ra := &rangeReader{ctx: ctx, c: c, ref: ref, size: size}
	zr, err := zip.NewReader(ra, size)
	if errors.Is(err, zip.ErrInsecurePath) && zr != nil {
		err = nil // names such as "../x" are F&O's to judge; only the root matters here
	}
	if ra.err != nil {
		return nil, ra.err
	}
	if err != nil {
		return nil, &NotAPackageError{Reason: "it is not a zip file (" + err.Error() + ")"}
	}
	root := map[string]*zip.File{}
	var nested []string
	for _, f := range zr.File {
		if strings.ContainsAny(f.Name, `/\`) {
			nested = append(nested, f.Name)
			continue
		}
		root[strings.ToLower(f.Name)] = f
	}
	partial := root["manifest.xml"] != nil || root["packageheader.xml"] != nil
	for _, must := range []string{"Manifest.xml", "PackageHeader.xml"} {
		if root[strings.ToLower(must)] != nil {
			continue
		}
		for _, n := range nested {
			if strings.EqualFold(n[strings.LastIndexAny(n, `/\`)+1:], must) {
				return nil, &NotAPackageError{Reason: fmt.Sprintf("%s is in a folder (%s), not at the root of the zip", must, n), LooksLikePackage: true}
			}
		}
		return nil, &NotAPackageError{Reason: "the zip has no " + must + " at its root", LooksLikePackage: partial}
	}
	m, err := readManifest(root["manifest.xml"])
	if ra.err != nil {
		return nil, ra.err
	}
	if err != nil {
		return &Package{Note: "Manifest.xml could not be read (" + err.Error() + "), so the package's entities are unknown here"}, nil
	}
	p := &Package{DefinitionGroup: strings.TrimSpace(m.DefinitionGroupName)}
	for _, e := range m.Entities {
		if n := strings.TrimSpace(e.EntityName); n != "" {
			p.Entities = append(p.Entities, n)
		}
	}
	return p, nil
}

// manifest is the part of Manifest.xml read: element names match in any
// namespace.
type manifest struct {
	XMLName             xml.Name `xml:"DataManagementPackageManifest"`
	DefinitionGroupName string   `xml:"DefinitionGroupName"`
	Entities            []struct {
		EntityName string `xml:"EntityName"`
	} `xml:"PackageEntityList>DataManagementPackageEntityData"`
}

func readManifest(f *zip.File) (*manifest, error) {
	if f.UncompressedSize64 > maxManifest {
		return nil, fmt.Errorf("it is larger than %d MiB", maxManifest>>20)
	}
	rc, err := f.Open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	raw, err := io.ReadAll(io.LimitReader(rc, maxManifest))
	if err != nil {
		return nil, err
	}
	d := xml.NewDecoder(bytes.NewReader(toUTF8(raw)))
	d.CharsetReader = func(_ string, in io.Reader) (io.Reader, error) { return in, nil } // made UTF-8 already
	var m manifest
	if err := d.Decode(&m); err != nil {
		return nil, err
	}
	return &m, nil
}

// toUTF8 turns the byte order marks F&O's packages carry (the Microsoft
// sample is UTF-16LE with a BOM) into UTF-8.
func toUTF8(b []byte) []byte {
	var order binary.ByteOrder
	switch {
	case bytes.HasPrefix(b, []byte{0xEF, 0xBB, 0xBF}):
		return b[3:]
	case bytes.HasPrefix(b, []byte{0xFF, 0xFE}):
		order = binary.LittleEndian
	case bytes.HasPrefix(b, []byte{0xFE, 0xFF}):
		order = binary.BigEndian
	default:
		return b
	}
	b = b[2:]
	u := make([]uint16, len(b)/2)
	for i := range u {
		u[i] = order.Uint16(b[2*i:])
	}
	return []byte(string(utf16.Decode(u)))
}

// window is how much one ranged GET fetches: the zip reader asks for a few
// KiB at a time, and the directory and manifest sit close together.
const window = 64 << 10

// rangeReader is an io.ReaderAt over ranged GETs of one object version,
// keeping the windows it fetched. The first S3 failure is kept in err, so
// that a read that failed is not taken for a file that is not a zip.
type rangeReader struct {
	ctx   context.Context
	c     s3io.Getter
	ref   s3io.Ref
	size  int64
	cache map[int64][]byte
	err   error
}

func (r *rangeReader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("negative offset")
	}
	n := 0
	for n < len(p) && off+int64(n) < r.size {
		at := off + int64(n)
		w, err := r.windowAt(at / window)
		if err != nil {
			return n, err
		}
		n += copy(p[n:], w[at%window:])
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (r *rangeReader) windowAt(i int64) ([]byte, error) {
	if w, ok := r.cache[i]; ok {
		return w, nil
	}
	if r.err != nil {
		return nil, r.err
	}
	start, end := i*window, min((i+1)*window, r.size)-1
	in := &s3.GetObjectInput{Bucket: &r.ref.Bucket, Key: &r.ref.Key, Range: aptr(fmt.Sprintf("bytes=%d-%d", start, end))}
	if r.ref.VersionID != "" {
		in.VersionId = &r.ref.VersionID
	} else if r.ref.ETag != "" {
		in.IfMatch = aptr(`"` + r.ref.ETag + `"`)
	}
	out, err := r.c.GetObject(r.ctx, in)
	if err == nil {
		var w []byte
		w, err = io.ReadAll(out.Body)
		out.Body.Close()
		if err == nil && int64(len(w)) != end-start+1 {
			err = fmt.Errorf("got %d bytes of range %d-%d", len(w), start, end)
		}
		if err == nil {
			if r.cache == nil || len(r.cache) >= 16 {
				r.cache = map[int64][]byte{}
			}
			r.cache[i] = w
			return w, nil
		}
	}
	r.err = fmt.Errorf("read s3://%s/%s: %w", r.ref.Bucket, r.ref.Key, err)
	return nil, r.err
}

func aptr(s string) *string { return &s }
