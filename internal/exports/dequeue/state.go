package dequeue

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"time"
	"unicode"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// Marker states.
const (
	// StateReserved: the key is chosen and landing has started (or failed).
	StateReserved = "reserved"
	// StateLanded: the object is complete at Key.
	StateLanded = "landed"
)

// Marker is the idempotency record of one F&O export, at
// <STATE_PREFIX>exports/<job>/<correlationId>.json. It is written before
// the object (reserving the key, whose date part is the first time the
// export was seen) and updated once the object is complete, so a
// re-delivered export lands at the same key or, once landed, is only
// acknowledged, even if people have since moved the object away. A
// dataProject job's package has one too, with the execution ID as its
// CorrelationID.
type Marker struct {
	Job           string    `json:"job"`
	ActivityID    string    `json:"activityId"`
	CorrelationID string    `json:"correlationId"`
	Key           string    `json:"key"`
	State         string    `json:"state"`
	FirstSeen     time.Time `json:"firstSeen"`
	LandedAt      time.Time `json:"landedAt,omitzero"`
	Size          int64     `json:"size,omitempty"`
	ETag          string    `json:"etag,omitempty"`
	VersionID     string    `json:"versionId,omitempty"`
	// Unpacked lists the entity files written beside a data package.
	Unpacked []string `json:"unpacked,omitempty"`
}

// MissingFile is the record of a dequeue answer without a file, at
// <STATE_PREFIX>exports/<job>/<correlationId>.missing.json.
type MissingFile struct {
	Job                      string    `json:"job"`
	ActivityID               string    `json:"activityId"`
	CorrelationID            string    `json:"correlationId"`
	Reason                   string    `json:"reason"`
	FileDownloadErrorMessage *string   `json:"fileDownLoadErrorMessage"`
	IsDownloadFileExist      *bool     `json:"isDownLoadFileExist"`
	DownloadLocationPresent  bool      `json:"downloadLocationPresent"`
	LastDequeueDateTime      *string   `json:"lastDequeueDateTime"`
	RecordedAt               time.Time `json:"recordedAt"`
	// Acked says whether the message was acknowledged (ackMissingFile);
	// otherwise F&O hands it out again after its visibility timeout.
	Acked bool `json:"acked"`
}

var safeID = regexp.MustCompile(`^[A-Za-z0-9_{}-][A-Za-z0-9._{}-]{0,127}$`)

// KeyID turns a correlation ID into a key segment. F&O's IDs are GUIDs and
// pass unchanged; anything else (control characters have been seen in F&O
// IDs) is reduced to safe characters plus a hash of the original, so
// distinct IDs never share a key.
func KeyID(correlationID string) string {
	if safeID.MatchString(correlationID) {
		return correlationID
	}
	var b strings.Builder
	for _, r := range correlationID {
		if b.Len() >= 64 {
			break
		}
		if r < 0x80 && (r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	sum := sha256.Sum256([]byte(correlationID))
	return b.String() + "-" + hex.EncodeToString(sum[:6])
}

// MarkerKey is where the marker of an export lives.
func (h *Handler) MarkerKey(job, correlationID string) string {
	return h.cfg.StatePrefix + "exports/" + job + "/" + KeyID(correlationID) + ".json"
}

// MissingKey is where a missing-file record lives.
func (h *Handler) MissingKey(job, correlationID string) string {
	return h.cfg.StatePrefix + "exports/" + job + "/" + KeyID(correlationID) + ".missing.json"
}

// ObjectKey is where an export lands: <prefix><yyyy>/<mm>/<dd>/<id>-<name>,
// dated by the first time the export was seen (UTC).
func ObjectKey(prefix string, firstSeen time.Time, correlationID, name string) string {
	return prefix + firstSeen.UTC().Format("2006/01/02/") + KeyID(correlationID) + "-" + name
}

// maxMarker bounds the marker documents read (ours are well under 1 KiB).
const maxMarker = 1 << 20

// readMarker returns the marker, or nil when there is none. A document
// that was read whole and cannot be acted on (DecodeMarker refuses it) is a
// *DamagedMarkerError; any other error is a failed read, worth retrying.
func (h *Handler) readMarker(ctx context.Context, key string) (*Marker, error) {
	out, err := h.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: &h.cfg.Bucket, Key: &key})
	if err != nil {
		if isNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("read marker %s: %w", key, err)
	}
	defer out.Body.Close()
	// Read whole first: a read that breaks off and a document that is not
	// JSON both end in io.ErrUnexpectedEOF inside a decoder, and only the
	// second is damage.
	raw, err := io.ReadAll(io.LimitReader(out.Body, maxMarker+1))
	if err != nil {
		return nil, fmt.Errorf("read marker %s: %w", key, err)
	}
	damaged := func(err error) error {
		return &DamagedMarkerError{Key: key, ETag: aws.ToString(out.ETag), Raw: raw, Err: err}
	}
	if len(raw) > maxMarker {
		return nil, damaged(fmt.Errorf("not a marker document: larger than %d bytes", maxMarker))
	}
	m, err := h.DecodeMarker(bytes.NewReader(raw), key)
	if err != nil {
		return nil, damaged(err)
	}
	return m, nil
}

// DamagedMarkerError: the document at an export's marker key was read
// whole and cannot be acted on (see DecodeMarker). Reading it again will
// not help; handleFile moves it to quarantine (quarantine.go).
type DamagedMarkerError struct {
	Key  string // the marker key
	ETag string // of the document read, guarding its replacement
	Raw  []byte // the document (at most maxMarker+1 bytes)
	Err  error  // why it was refused
}

func (e *DamagedMarkerError) Error() string { return fmt.Sprintf("read marker %s: %v", e.Key, e.Err) }
func (e *DamagedMarkerError) Unwrap() error { return e.Err }

// DecodeMarker reads the marker document stored at markerKey and checks
// that it can be acted on, since the export lands at (or is recognised by)
// the key it names: it must be the marker of the job and correlation ID its
// own key says, and name a key of the shape ObjectKey builds,
// <prefix><yyyy>/<mm>/<dd>/<id>-<name> dated by FirstSeen (name: F&O's file
// name, or <job>.zip|.dat), with a clean prefix outside STATE_PREFIX. Anything else is refused with the
// reason, rather than followed to wherever it points (another job's
// export, the state prefix, an import folder).
func (h *Handler) DecodeMarker(r io.Reader, markerKey string) (*Marker, error) {
	var m Marker
	dec := json.NewDecoder(r)
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("not a marker document: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("not a marker document: unexpected data after the JSON object")
	}
	switch {
	case m.Key == "":
		return nil, errors.New("it names no key")
	case m.Job == "" || m.CorrelationID == "" || h.MarkerKey(m.Job, m.CorrelationID) != markerKey:
		return nil, fmt.Errorf("it is the marker of job %q, correlation ID %q, not of this key", clip(m.Job), clip(m.CorrelationID))
	case m.State != StateReserved && m.State != StateLanded:
		return nil, fmt.Errorf("unknown state %q", clip(m.State))
	}
	dir, file := "", m.Key
	if i := strings.LastIndex(m.Key, "/"); i >= 0 {
		dir, file = m.Key[:i+1], m.Key[i+1:]
	}
	date := m.FirstSeen.UTC().Format("2006/01/02/")
	prefix, dated := strings.CutSuffix(dir, date)
	id := KeyID(m.CorrelationID) + "-"
	name, named := strings.CutPrefix(file, id)
	if !dated || !named || name == "" || name == "." || name == ".." || strings.IndexFunc(name, unicode.IsControl) >= 0 {
		return nil, fmt.Errorf("key %q is not where this export lands (<prefix>%s%s<name>)", clip(m.Key), date, clip(id))
	}
	if p, err := CheckPrefix(prefix); err != nil || p != prefix {
		return nil, fmt.Errorf("key %q has no usable prefix", clip(m.Key))
	}
	if hasPrefix(prefix, h.cfg.StatePrefix) {
		return nil, fmt.Errorf("key %q is inside STATE_PREFIX %q", clip(m.Key), h.cfg.StatePrefix)
	}
	return &m, nil
}

// putJSON writes a small JSON document. With ifNoneMatch, an existing
// object makes it fail with an error isPreconditionFailed recognises.
func (h *Handler) putJSON(ctx context.Context, key string, v any, ifNoneMatch bool) error {
	cond := ""
	if ifNoneMatch {
		cond = "*"
	}
	return h.putJSONIf(ctx, key, v, cond)
}

// putJSONIf writes a small JSON document under a condition: "" none,
// "*" only if the key is free (If-None-Match), else only if the key still
// holds the object of that ETag (If-Match). A failed condition is an error
// isPreconditionFailed recognises.
func (h *Handler) putJSONIf(ctx context.Context, key string, v any, cond string) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("write %s: %w", key, err)
	}
	in := &s3.PutObjectInput{
		Bucket: &h.cfg.Bucket, Key: &key, Body: bytes.NewReader(b),
		ContentLength: aws.Int64(int64(len(b))), ContentType: aws.String("application/json"),
	}
	switch cond {
	case "":
	case "*":
		in.IfNoneMatch = aws.String("*")
	default:
		in.IfMatch = aws.String(cond)
	}
	if _, err := h.s3.PutObject(ctx, in); err != nil {
		return fmt.Errorf("write %s: %w", key, err)
	}
	return nil
}

// headObject returns the object's head, or nil when it does not exist.
func (h *Handler) headObject(ctx context.Context, key string) (*s3.HeadObjectOutput, error) {
	out, err := h.s3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &h.cfg.Bucket, Key: &key})
	if err != nil {
		if isNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("head %s: %w", key, err)
	}
	return out, nil
}

func isNotFound(err error) bool {
	var nsk *s3types.NoSuchKey
	var nf *s3types.NotFound
	if errors.As(err, &nsk) || errors.As(err, &nf) {
		return true
	}
	return httpStatus(err) == http.StatusNotFound
}

// isPreconditionFailed: a conditional write (If-None-Match: *) found the
// key taken.
func isPreconditionFailed(err error) bool {
	if httpStatus(err) == http.StatusPreconditionFailed {
		return true
	}
	var ae smithy.APIError
	return errors.As(err, &ae) && ae.ErrorCode() == "PreconditionFailed"
}

func httpStatus(err error) int {
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}
