package dmfpackage

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/fno-bridge/s3-fno/internal/shared/layout"
	"github.com/fno-bridge/s3-fno/internal/shared/s3io"
)

// Template is a package template: the Manifest.xml and PackageHeader.xml a
// route keeps under _config/templates/<name>/ to import plain data files
// through the package API. Its manifest names exactly one entity, whose
// InputFilePath is the name the data file gets inside the package.
type Template struct {
	Name string
	// Manifest and Header are the two files as stored (any encoding F&O
	// reads: they go into the package unchanged).
	Manifest, Header []byte
	// Entity is the manifest's one EntityName, DataFile its InputFilePath.
	Entity, DataFile string
	// Versions are the version IDs (or ETags) of the two files read.
	Versions [2]string
}

// Wrapping says how a plain file became a package, for the ledger record
// and the result document: the template's folder, the versions of its two
// files, and the file's name inside the package.
type Wrapping struct {
	Template        string `json:"template"`
	ManifestVersion string `json:"manifestVersion,omitempty"`
	HeaderVersion   string `json:"headerVersion,omitempty"`
	DataFile        string `json:"dataFile"`
}

// Wrapping is how Wrap makes packages of this template.
func (t *Template) Wrapping() *Wrapping {
	return &Wrapping{Template: layout.TemplatesPrefix + t.Name + "/", ManifestVersion: t.Versions[0], HeaderVersion: t.Versions[1], DataFile: t.DataFile}
}

// TemplateError: a route's package template cannot be used (missing, not
// a manifest or header F&O reads, not naming exactly one entity). Key is
// the file at fault. It is the route's configuration that is wrong, not
// the files dropped: they wait until it is fixed.
type TemplateError struct {
	Name   string
	Key    string // s3://bucket/key
	Reason string
}

func (e *TemplateError) Error() string {
	return "package template " + e.Name + ": " + e.Key + ": " + e.Reason
}

// maxTemplateFile bounds a template file: a manifest of one entity is a
// few KiB.
const maxTemplateFile = 1 << 20

// The two files of a template, as a package names them.
const (
	manifestFile = "Manifest.xml"
	headerFile   = "PackageHeader.xml"
)

// LoadTemplate reads and checks the package template name in bucket. It
// returns a *TemplateError for a template that cannot be used, and other
// errors for reads that failed (worth retrying).
func LoadTemplate(ctx context.Context, c s3io.Getter, bucket, name string) (*Template, error) {
	t := &Template{Name: name}
	var err error
	if t.Manifest, t.Versions[0], err = t.read(ctx, c, bucket, manifestFile); err != nil {
		return nil, err
	}
	var m struct {
		XMLName  xml.Name `xml:"DataManagementPackageManifest"`
		Entities []struct {
			EntityName    string `xml:"EntityName"`
			InputFilePath string `xml:"InputFilePath"`
		} `xml:"PackageEntityList>DataManagementPackageEntityData"`
	}
	if err := decodeXML(t.Manifest, &m); err != nil {
		return nil, t.fault(bucket, manifestFile, "it is not a DataManagementPackageManifest ("+err.Error()+")")
	}
	if len(m.Entities) != 1 {
		return nil, t.fault(bucket, manifestFile, fmt.Sprintf("it names %d entities; a template for plain files names exactly one "+
			"(the entity each file holds); import several entities as ready-made data packages instead", len(m.Entities)))
	}
	t.Entity, t.DataFile = strings.TrimSpace(m.Entities[0].EntityName), strings.TrimSpace(m.Entities[0].InputFilePath)
	switch {
	case t.Entity == "":
		return nil, t.fault(bucket, manifestFile, "its entity has no EntityName")
	case t.DataFile == "":
		return nil, t.fault(bucket, manifestFile, "entity "+t.Entity+" has no InputFilePath: the package would not say which file holds its data")
	case strings.ContainsAny(t.DataFile, `/\`) || hasControl(t.DataFile):
		return nil, t.fault(bucket, manifestFile, fmt.Sprintf("the InputFilePath %q of entity %s is not a plain file name "+
			"(F&O looks for the file at the root of the package)", t.DataFile, t.Entity))
	case strings.EqualFold(t.DataFile, manifestFile) || strings.EqualFold(t.DataFile, headerFile):
		return nil, t.fault(bucket, manifestFile, fmt.Sprintf("the InputFilePath of entity %s is %s, one of the package's own files", t.Entity, t.DataFile))
	}
	if t.Header, t.Versions[1], err = t.read(ctx, c, bucket, headerFile); err != nil {
		return nil, err
	}
	var h struct {
		XMLName xml.Name `xml:"DataManagementPackageHeader"`
	}
	if err := decodeXML(t.Header, &h); err != nil {
		return nil, t.fault(bucket, headerFile, "it is not a DataManagementPackageHeader ("+err.Error()+")")
	}
	return t, nil
}

// read gets one file of the template, bounded. A missing file is a
// *TemplateError; other failures are returned as they are.
func (t *Template) read(ctx context.Context, c s3io.Getter, bucket, file string) ([]byte, string, error) {
	key := layout.TemplateKey(t.Name, file)
	out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: &bucket, Key: &key})
	if s3io.IsNotFound(err) {
		return nil, "", t.fault(bucket, file, "it does not exist: upload the template's "+manifestFile+" and "+headerFile+
			" (as F&O's Data management workspace exports them for the data project) there")
	}
	if err != nil {
		return nil, "", fmt.Errorf("read the package template s3://%s/%s: %w", bucket, key, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(io.LimitReader(out.Body, maxTemplateFile+1))
	if err != nil {
		return nil, "", fmt.Errorf("read the package template s3://%s/%s: %w", bucket, key, err)
	}
	if len(b) > maxTemplateFile {
		return nil, "", t.fault(bucket, file, fmt.Sprintf("it is larger than %d KiB", maxTemplateFile>>10))
	}
	v := s3io.NormalizeVersion(deref(out.VersionId))
	if v == "" {
		v = s3io.NormalizeETag(deref(out.ETag))
	}
	return b, v, nil
}

func (t *Template) fault(bucket, file, reason string) *TemplateError {
	return &TemplateError{Name: t.Name, Key: "s3://" + bucket + "/" + layout.TemplateKey(t.Name, file), Reason: reason}
}

// decodeXML decodes a package XML file in UTF-8 or UTF-16 with a BOM.
func decodeXML(b []byte, v any) error {
	d := xml.NewDecoder(bytes.NewReader(toUTF8(b)))
	d.CharsetReader = func(_ string, in io.Reader) (io.Reader, error) { return in, nil } // made UTF-8 already
	return d.Decode(v)
}

func hasControl(s string) bool {
	return strings.IndexFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// Wrap returns the data package made of the template and data (size bytes):
// a zip written while it is read, through an io.Pipe, holding
// Manifest.xml, PackageHeader.xml and data under the name the manifest
// gives it (DataFile). Entries are stored, not compressed: building the
// package then costs a CRC-32 and the zip writer's small buffer, never a
// copy of the file, and it keeps pace with the upload. A data stream that
// fails, or ends before or after size bytes, fails the package's read
// before its end, so an upload of it commits nothing. Close ends the
// writing (closing data) and waits for it.
func (t *Template) Wrap(data io.ReadCloser, size int64, modified time.Time) io.ReadCloser {
	if modified.IsZero() {
		modified = time.Now()
	}
	pr, pw := io.Pipe()
	w := &wrapped{PipeReader: pr, data: data, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		pw.CloseWithError(t.write(pw, data, size, modified))
	}()
	return w
}

// write writes the package to out.
func (t *Template) write(out io.Writer, data io.Reader, size int64, modified time.Time) error {
	zw := zip.NewWriter(out)
	for _, f := range []struct {
		name string
		r    io.Reader
	}{{manifestFile, bytes.NewReader(t.Manifest)}, {headerFile, bytes.NewReader(t.Header)}, {t.DataFile, data}} {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: f.name, Method: zip.Store, Modified: modified.UTC()})
		if err != nil {
			return fmt.Errorf("package %s: %w", f.name, err)
		}
		n, err := io.Copy(w, f.r)
		if err != nil {
			return fmt.Errorf("package %s: after %d bytes: %w", f.name, n, err)
		}
		if f.name == t.DataFile && n != size {
			return fmt.Errorf("package %s: the file gave %d bytes, not its %d", f.name, n, size)
		}
	}
	return zw.Close()
}

// wrapped is a package being written by Wrap.
type wrapped struct {
	*io.PipeReader
	data io.Closer
	done chan struct{}
}

func (w *wrapped) Close() error {
	w.PipeReader.Close()  // the writer's next write fails
	err := w.data.Close() // and a read it is in returns
	<-w.done
	return err
}
