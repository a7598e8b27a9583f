package dequeue

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/fno-bridge/s3-fno/internal/exports/unpack"
	"github.com/fno-bridge/s3-fno/pkg/d365"
)

// handleFile lands and acknowledges one dequeued file. It never returns an
// error: what happened is in the result.
func (h *Handler) handleFile(ctx context.Context, log *slog.Logger, in Input, d *d365.DequeuedFile) FileResult {
	r := FileResult{CorrelationID: d.CorrelationID, Redelivered: d.Redelivered()}
	log = log.With("correlationId", d.CorrelationID)
	if !d.HasFile() {
		h.missingFile(ctx, log, in, d, &r)
		return r
	}
	fail := func(stage string, err error) FileResult {
		r.Stage, r.Error = stage, fmt.Sprintf("%s: %v", stage, err)
		if r.Outcome == "" {
			r.Outcome = OutcomeFailed
		}
		log.ErrorContext(ctx, "export: not acknowledged", "stage", stage, "key", r.Key, "error", err.Error())
		return r
	}

	markerKey := h.MarkerKey(in.Job, d.CorrelationID)
	m, err := h.readMarker(ctx, markerKey)
	// How a new marker is written: only where there is none, or in place
	// of the damaged one just quarantined.
	reserve := "*"
	var dm *DamagedMarkerError
	if errors.As(err, &dm) {
		m, reserve, err = h.setAside(ctx, log, in, d, dm, &r)
	}
	if err != nil {
		return fail("state", err)
	}
	if m != nil {
		r.Key = m.Key
		done, err := h.recognise(ctx, m)
		if err != nil {
			return fail("state", err)
		}
		if done {
			r.Outcome = OutcomeAlreadyLanded
			log.InfoContext(ctx, "export: already landed (re-delivered)", "key", m.Key)
			if in.Unpack && m.Unpacked == nil {
				if err := h.unpack(ctx, in, d, m, markerKey, &r); err != nil {
					return fail("unpack", err)
				}
			}
			return h.ack(ctx, log, in, d, r, fail)
		}
	}

	dl, err := h.fno.Download(ctx, *d.DownloadLocation)
	if err != nil {
		if errors.Is(err, d365.ErrForeignHost) {
			err = fmt.Errorf("refused: %w", err)
		}
		return fail("download", err)
	}
	defer dl.Body.Close()
	body := &countingReader{r: dl.Body, want: dl.Size}

	// Sniff the first bytes to name the file; they are put back in front.
	head := make([]byte, 4)
	n, err := io.ReadFull(body, head)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return fail("download", err)
	}
	head = head[:n]
	isZip := bytes.Equal(head, []byte("PK\x03\x04"))

	if m == nil {
		name := exportName(in.Job, dl.FileName, isZip)
		now := h.cfg.Now().UTC()
		m = &Marker{
			Job: in.Job, ActivityID: in.ActivityID, CorrelationID: d.CorrelationID, State: StateReserved,
			FirstSeen: now, Key: ObjectKey(in.Prefix, now, d.CorrelationID, name),
		}
		if err := h.putJSONIf(ctx, markerKey, m, reserve); err != nil {
			if !isPreconditionFailed(err) {
				return fail("state", err)
			}
			// Another invocation reserved it first (or replaced the damaged
			// marker): use its key.
			if m, err = h.readMarker(ctx, markerKey); err != nil || m == nil {
				return fail("state", fmt.Errorf("marker %s appeared and vanished: %v", markerKey, err))
			}
		}
	}
	r.Key = m.Key

	contentType := "application/octet-stream"
	if isZip {
		contentType = "application/zip"
	}
	up := &transfermanager.UploadObjectInput{
		Bucket:      &h.cfg.Bucket,
		Key:         &m.Key,
		Body:        io.MultiReader(bytes.NewReader(head), body),
		IfNoneMatch: aws.String("*"),
		ContentType: &contentType,
		Metadata:    metadata(in, d.CorrelationID),
	}
	if dl.Size >= 0 {
		up.ContentLength = aws.Int64(dl.Size)
	}
	out, err := h.tm.UploadObject(ctx, up)
	switch {
	case err == nil:
		r.Outcome, r.Bytes = OutcomeLanded, body.n
		m.State, m.LandedAt, m.Size = StateLanded, h.cfg.Now().UTC(), body.n
		m.ETag, m.VersionID = aws.ToString(out.ETag), aws.ToString(out.VersionID)
		log.InfoContext(ctx, "export: landed", "key", m.Key, "bytes", body.n)
	case isPreconditionFailed(err):
		// The key was taken between the marker check and now: a landing
		// that completed after its marker update was lost.
		r.Outcome = OutcomeAlreadyLanded
		m.State, m.LandedAt = StateLanded, h.cfg.Now().UTC()
		log.InfoContext(ctx, "export: already landed (conditional write refused)", "key", m.Key)
	default:
		h.abortLeftover(err, m.Key)
		return fail("land", err)
	}
	if err := h.putJSON(ctx, markerKey, m, false); err != nil {
		// The object is complete; the marker only guards against re-landing
		// an object people have since moved. Go on and acknowledge.
		log.WarnContext(ctx, "export: landed but the marker was not updated", "marker", markerKey, "error", err.Error())
	}
	if in.Unpack {
		if err := h.unpack(ctx, in, d, m, markerKey, &r); err != nil {
			return fail("unpack", err)
		}
	}
	return h.ack(ctx, log, in, d, r, fail)
}

// recognise reports whether the export of marker m has landed. A reserved
// marker whose object exists is brought up to date.
func (h *Handler) recognise(ctx context.Context, m *Marker) (bool, error) {
	if m.State == StateLanded {
		return true, nil
	}
	head, err := h.headObject(ctx, m.Key)
	if err != nil || head == nil {
		return false, err
	}
	m.State, m.LandedAt, m.Size = StateLanded, h.cfg.Now().UTC(), aws.ToInt64(head.ContentLength)
	m.ETag, m.VersionID = aws.ToString(head.ETag), aws.ToString(head.VersionId)
	if err := h.putJSON(ctx, h.MarkerKey(m.Job, m.CorrelationID), m, false); err != nil {
		return false, err
	}
	return true, nil
}

// unpack writes the entity files of the landed package beside it. A
// package that cannot be unpacked (not a zip, no manifest) is reported and
// does not hold back the ack; any other failure (S3) does, so a re-delivery
// tries again.
func (h *Handler) unpack(ctx context.Context, in Input, d *d365.DequeuedFile, m *Marker, markerKey string, r *FileResult) error {
	head, err := h.headObject(ctx, m.Key)
	if err != nil {
		return err
	}
	if head == nil {
		r.UnpackError = fmt.Sprintf("unpack: %s is no longer there", m.Key)
		return nil
	}
	// Pinned by ETag (If-Match), not VersionId: reading a version needs
	// s3:GetObjectVersion, which the function is not granted.
	src := unpack.Source{
		Bucket: h.cfg.Bucket, Key: m.Key, Size: aws.ToInt64(head.ContentLength), ETag: aws.ToString(head.ETag),
	}
	res, err := unpack.Package(ctx, h.s3, h.tm, src, unpack.Target{
		Bucket: h.cfg.Bucket, Prefix: strings.TrimSuffix(m.Key, ".zip") + "/",
		Metadata: metadata(in, d.CorrelationID),
	})
	var fe *unpack.FormatError
	if errors.As(err, &fe) {
		r.UnpackError = "unpack: " + err.Error()
		h.log.WarnContext(ctx, "export: package not unpacked", "job", in.Job, "correlationId", d.CorrelationID, "key", m.Key, "error", err.Error())
		return nil
	}
	if err != nil {
		return err
	}
	for _, f := range res.Files {
		r.Unpacked = append(r.Unpacked, f.Key)
	}
	m.Unpacked = append([]string{}, r.Unpacked...)
	if err := h.putJSON(ctx, markerKey, m, false); err != nil {
		h.log.WarnContext(ctx, "export: unpacked but the marker was not updated", "marker", markerKey, "error", err.Error())
	}
	return nil
}

// ack acknowledges d and completes r.
func (h *Handler) ack(ctx context.Context, log *slog.Logger, in Input, d *d365.DequeuedFile, r FileResult, fail func(string, error) FileResult) FileResult {
	if err := h.fno.Ack(ctx, in.ActivityID, d); err != nil {
		return fail("ack", err)
	}
	r.Acked = true
	log.InfoContext(ctx, "export: acknowledged", "key", r.Key, "outcome", r.Outcome)
	return r
}

// missingFile records an answer without a file and acknowledges it only
// when the job says so.
func (h *Handler) missingFile(ctx context.Context, log *slog.Logger, in Input, d *d365.DequeuedFile, r *FileResult) {
	r.Outcome = OutcomeMissingFile
	reason := "DownloadLocation is null"
	switch {
	case d.IsDownloadFileExist != nil && !*d.IsDownloadFileExist:
		reason = "IsDownLoadFileExist is false"
	case d.DownloadLocation != nil:
		reason = "DownloadLocation is empty"
	}
	rec := MissingFile{
		Job: in.Job, ActivityID: in.ActivityID, CorrelationID: d.CorrelationID, Reason: reason,
		FileDownloadErrorMessage: d.FileDownloadErrorMessage, IsDownloadFileExist: d.IsDownloadFileExist,
		DownloadLocationPresent: d.DownloadLocation != nil && *d.DownloadLocation != "",
		LastDequeueDateTime:     d.LastDequeueDateTime, RecordedAt: h.cfg.Now().UTC(), Acked: in.AckMissingFile,
	}
	key := h.MissingKey(in.Job, d.CorrelationID)
	r.Key = key
	msg := ""
	if d.FileDownloadErrorMessage != nil {
		msg = *d.FileDownloadErrorMessage
	}
	if err := h.putJSON(ctx, key, rec, false); err != nil {
		r.Stage, r.Error = "state", "state: "+err.Error()
		log.ErrorContext(ctx, "export: missing file not recorded, not acknowledged", "reason", reason, "error", err.Error())
		return
	}
	if !in.AckMissingFile {
		log.WarnContext(ctx, "export: no file; recorded, left for F&O to hand out again (ackMissingFile is false)",
			"reason", reason, "fnoMessage", msg, "record", key)
		return
	}
	if err := h.fno.Ack(ctx, in.ActivityID, d); err != nil {
		r.Stage, r.Error = "ack", "ack: "+err.Error()
		log.ErrorContext(ctx, "export: missing file recorded, ack failed", "error", err.Error())
		return
	}
	r.Acked = true
	log.WarnContext(ctx, "export: no file; recorded and acknowledged", "reason", reason, "fnoMessage", msg, "record", key)
}

// abortLeftover makes sure a failed multipart upload is aborted, so no
// parts linger. The transfer manager aborts it itself, but reports a failed
// abort only when the upload failed by cancellation; aborting again is
// cheap (NoSuchUpload means it is gone). The bucket's lifecycle rule for
// incomplete uploads is the last resort.
func (h *Handler) abortLeftover(err error, key string) {
	var mu transfermanager.MultipartUploadError
	if !errors.As(err, &mu) || mu.UploadID() == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, aerr := h.s3.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{
		Bucket: &h.cfg.Bucket, Key: &key, UploadId: aws.String(mu.UploadID()),
	})
	var nsu *s3types.NoSuchUpload
	if aerr != nil && !errors.As(aerr, &nsu) && !isNotFound(aerr) {
		h.log.Warn("export: multipart upload left for the lifecycle rule", "key", key, "uploadId", mu.UploadID(), "error", aerr.Error())
	}
}

// metadata is the F&O identity stored with every object written for an
// export. Values that are not printable ASCII are percent-encoded (S3
// metadata travels in HTTP headers).
func metadata(in Input, correlationID string) map[string]string {
	return map[string]string{
		"job":            unpack.MetaValue(in.Job),
		"activity-id":    unpack.MetaValue(in.ActivityID),
		"correlation-id": unpack.MetaValue(correlationID),
	}
}

// countingReader counts bytes and, when the length is known, turns a short
// body into an error, so a truncated export never completes an upload.
type countingReader struct {
	r    io.Reader
	n    int64
	want int64 // -1: unknown
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if err == io.EOF && c.want >= 0 && c.n != c.want {
		return n, fmt.Errorf("export body ended after %d of %d bytes: %w", c.n, c.want, io.ErrUnexpectedEOF)
	}
	return n, err
}

// exportName is the file part of an export's key: the name F&O gave the
// download (already reduced to a safe base name by the client), else the
// job's name with .zip for a package and .dat for anything else.
func exportName(job, fileName string, isZip bool) string {
	switch {
	case fileName != "":
		return fileName
	case isZip:
		return job + ".zip"
	}
	return job + ".dat"
}
