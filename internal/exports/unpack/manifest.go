package unpack

import (
	"bufio"
	"encoding/xml"
	"fmt"
	"io"
	"path"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// ManifestEntity is one DataManagementPackageEntityData of a package's
// Manifest.xml: the entity's DMF label and its data file in the zip.
type ManifestEntity struct {
	EntityName    string
	InputFilePath string
}

// ReadManifest reads the entities of a data package manifest
// (DataManagementPackageManifest/PackageEntityList/DataManagementPackageEntityData).
// It accepts UTF-8 (with or without BOM) and UTF-16 with a BOM, which is how
// F&O writes it, and streams: memory is bounded by one entity element.
func ReadManifest(r io.Reader) ([]ManifestEntity, error) {
	dec := xml.NewDecoder(utf8Reader(r))
	dec.CharsetReader = func(label string, in io.Reader) (io.Reader, error) {
		switch strings.ToLower(label) {
		case "utf-8", "utf8", "utf-16", "utf16", "unicode", "utf-16le", "utf-16be", "us-ascii", "ascii":
			return in, nil // already UTF-8 (converted from a BOM'd UTF-16 if needed)
		}
		return nil, fmt.Errorf("unsupported manifest encoding %q", label)
	}
	var out []ManifestEntity
	root := ""
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("manifest: %w", err)
		}
		se, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		if root == "" {
			root = se.Name.Local
			if root != "DataManagementPackageManifest" {
				return nil, fmt.Errorf("manifest: root element is <%s>, want <DataManagementPackageManifest>", root)
			}
			continue
		}
		if se.Name.Local != "DataManagementPackageEntityData" {
			continue
		}
		var ent struct {
			EntityName    string `xml:"EntityName"`
			InputFilePath string `xml:"InputFilePath"`
		}
		if err := dec.DecodeElement(&ent, &se); err != nil {
			return nil, fmt.Errorf("manifest: %w", err)
		}
		out = append(out, ManifestEntity{
			EntityName:    strings.TrimSpace(ent.EntityName),
			InputFilePath: strings.TrimSpace(ent.InputFilePath),
		})
	}
	if root == "" {
		return nil, fmt.Errorf("manifest: empty document")
	}
	return out, nil
}

// fileName is the name an InputFilePath refers to inside the zip: its last
// path element, whichever separator F&O used.
func fileName(inputFilePath string) string {
	return path.Base(strings.ReplaceAll(inputFilePath, `\`, "/"))
}

// utf8Reader turns a UTF-16 document with a BOM into UTF-8 and drops a
// UTF-8 BOM, as a stream.
func utf8Reader(r io.Reader) io.Reader {
	br := bufio.NewReader(r)
	bom, _ := br.Peek(3)
	switch {
	case len(bom) >= 3 && bom[0] == 0xEF && bom[1] == 0xBB && bom[2] == 0xBF:
		br.Discard(3)
		return br
	case len(bom) >= 2 && bom[0] == 0xFF && bom[1] == 0xFE:
		br.Discard(2)
		return &utf16Reader{r: br}
	case len(bom) >= 2 && bom[0] == 0xFE && bom[1] == 0xFF:
		br.Discard(2)
		return &utf16Reader{r: br, big: true}
	}
	return br
}

type utf16Reader struct {
	r   *bufio.Reader
	big bool
	out []byte
	err error
}

func (u *utf16Reader) unit() (uint16, error) {
	var b [2]byte
	if _, err := io.ReadFull(u.r, b[:]); err != nil {
		if err == io.ErrUnexpectedEOF {
			return 0, fmt.Errorf("manifest: odd number of bytes in UTF-16 text")
		}
		return 0, err
	}
	if u.big {
		return uint16(b[0])<<8 | uint16(b[1]), nil
	}
	return uint16(b[1])<<8 | uint16(b[0]), nil
}

func (u *utf16Reader) Read(p []byte) (int, error) {
	for len(u.out) < len(p) && u.err == nil {
		c, err := u.unit()
		if err != nil {
			u.err = err
			break
		}
		r := rune(c)
		if utf16.IsSurrogate(r) {
			c2, err := u.unit()
			if err != nil {
				u.err = err
				r = utf8.RuneError
			} else {
				r = utf16.DecodeRune(r, rune(c2))
			}
		}
		u.out = utf8.AppendRune(u.out, r)
	}
	n := copy(p, u.out)
	u.out = u.out[n:]
	if n == 0 && u.err != nil {
		return 0, u.err
	}
	return n, nil
}
