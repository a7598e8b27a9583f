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

	"github.com/fno-bridge/s3-fno/internal/exports/s3upload"
	"github.com/fno-bridge/s3-fno/internal/exports/unpack"
	"github.com/fno-bridge/s3-fno/internal/shared/keepctx"
	"github.com/fno-bridge/s3-fno/internal/shared/metrics"
	"github.com/fno-bridge/s3-fno/internal/shared/notify"
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
		log.ErrorContext(ctx, "dequeue: not acknowledged", "stage", stage, "key", r.Key, "error", err.Error())
		h.exportFailed(ctx, in, d.CorrelationID, stage, r.Key, err)
		return r
	}
	open := func(ctx context.Context) (*download, error) { return h.openDownload(ctx, d) }
	if stage, err := h.landOnce(ctx, log, in, d.CorrelationID, open, &r); err != nil {
		return fail(stage, err)
	}
	return h.ack(ctx, log, in, d, r, fail)
}

// landOnce lands the export id names (a dequeued file's correlation ID, or
// a package job's execution ID) at most once: its marker reserves the key
// before the object is written with If-None-Match, and an export whose
// marker says it landed (or whose object is there) is only unpacked if
// that is still to do. open is called only when there is something to
// land. A failure returns the stage it happened at (state, download, land,
// unpack).
func (h *Handler) landOnce(ctx context.Context, log *slog.Logger, in Input, id string,
	open func(context.Context) (*download, error), r *FileResult) (string, error) {
	markerKey := h.MarkerKey(in.Job, id)
	m, reserve, err := h.currentMarker(ctx, log, in, id, markerKey, r)
	if err != nil {
		return "state", err
	}
	if m != nil {
		r.Key = m.Key
		done, err := h.recognise(ctx, m)
		if err != nil {
			return "state", err
		}
		if done {
			r.Outcome = OutcomeAlreadyLanded
			log.InfoContext(ctx, "dequeue: already landed", "key", m.Key)
			if in.Unpack && m.Unpacked == nil {
				if err := h.unpack(ctx, in, id, m, markerKey, r); err != nil {
					return "unpack", err
				}
			}
			return "", nil
		}
	}
	dl, err := open(ctx)
	if err != nil {
		return "download", err
	}
	defer dl.body.Close()
	if m == nil {
		if m, err = h.reserveMarker(ctx, in, id, dl, markerKey, reserve); err != nil {
			return "state", err
		}
	}
	r.Key = m.Key
	if err := h.land(ctx, log, in, id, m, dl, r); err != nil {
		return "land", err
	}
	if err := h.putJSON(ctx, markerKey, m, false); err != nil {
		// The object is complete; the marker only guards against re-landing
		// an object people have since moved. Go on.
		log.WarnContext(ctx, "dequeue: landed but the marker was not updated", "marker", markerKey, "error", err.Error())
	}
	if in.Unpack {
		if err := h.unpack(ctx, in, id, m, markerKey, r); err != nil {
			return "unpack", err
		}
	}
	return "", nil
}

// currentMarker reads the export's marker. A damaged one is set aside; then
// reserve is the condition a new marker is written under (in place of the
// one quarantined), else "*" (only where there is none).
func (h *Handler) currentMarker(ctx context.Context, log *slog.Logger, in Input, id, markerKey string,
	r *FileResult) (*Marker, string, error) {
	m, err := h.readMarker(ctx, markerKey)
	reserve := "*"
	var dm *DamagedMarkerError
	if errors.As(err, &dm) {
		m, reserve, err = h.setAside(ctx, log, in, id, dm, r)
	}
	return m, reserve, err
}

// download is an export being streamed from F&O: its first bytes were read
// to tell a package from a file and are put back in front of the rest.
type download struct {
	body  io.ReadCloser
	rest  *countingReader
	head  []byte
	size  int64
	name  string // F&O's file name, if it gave one
	isZip bool
}

// reader is the whole export, its first bytes included.
func (dl *download) reader() io.Reader { return io.MultiReader(bytes.NewReader(dl.head), dl.rest) }

func (h *Handler) openDownload(ctx context.Context, d *d365.DequeuedFile) (*download, error) {
	dl, err := h.fno.Download(ctx, *d.DownloadLocation)
	if err != nil {
		if errors.Is(err, d365.ErrForeignHost) {
			err = fmt.Errorf("refused: %w", err)
		}
		return nil, err
	}
	if dl.UnreadableDisposition != "" {
		h.log.WarnContext(ctx, "dequeue: F&O's Content-Disposition names no usable file name; the export is named after its job",
			"contentDisposition", dl.UnreadableDisposition, "correlationId", d.CorrelationID)
	}
	return startDownload(dl, dl.FileName)
}

// startDownload reads the first bytes of an opened download (to tell a
// package from a file) and keeps them for the landing; name is the file
// name the export lands under ("": after the job). The body is closed when
// that fails.
func startDownload(dl *d365.Download, name string) (*download, error) {
	out := &download{body: dl.Body, rest: &countingReader{r: dl.Body, want: dl.Size}, size: dl.Size, name: name}
	head := make([]byte, 4)
	n, err := io.ReadFull(out.rest, head)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		dl.Body.Close()
		return nil, err
	}
	out.head = head[:n]
	out.isZip = bytes.Equal(out.head, []byte("PK\x03\x04"))
	return out, nil
}

// reserveMarker writes a new marker naming the key the export lands at. When
// another invocation reserved it first, its marker (and key) is used.
func (h *Handler) reserveMarker(ctx context.Context, in Input, id string, dl *download, markerKey, reserve string) (*Marker, error) {
	now := h.cfg.Now().UTC()
	m := &Marker{
		Job: in.Job, ActivityID: in.ActivityID, CorrelationID: id, State: StateReserved,
		FirstSeen: now, Key: ObjectKey(in.Prefix, now, id, exportName(in.Job, dl.name, dl.isZip)),
	}
	err := h.putJSONIf(ctx, markerKey, m, reserve)
	if err == nil {
		return m, nil
	}
	if !isPreconditionFailed(err) {
		return nil, err
	}
	if m, err = h.readMarker(ctx, markerKey); err != nil || m == nil {
		return nil, fmt.Errorf("marker %s appeared and vanished: %v", markerKey, err)
	}
	return m, nil
}

// land streams the export to its key, never over an existing object, and
// brings the marker up to date (written by the caller).
func (h *Handler) land(ctx context.Context, log *slog.Logger, in Input, id string, m *Marker, dl *download, r *FileResult) error {
	contentType := "application/octet-stream"
	if dl.isZip {
		contentType = "application/zip"
	}
	out, err := h.up.Upload(ctx, &s3upload.Input{
		Bucket: h.cfg.Bucket, Key: m.Key, Body: dl.reader(), ContentLength: dl.size,
		IfNoneMatch: "*", ContentType: contentType, Metadata: metadata(in, id),
	})
	switch {
	case err == nil:
		r.Outcome, r.Bytes = OutcomeLanded, dl.rest.n
		m.State, m.LandedAt, m.Size = StateLanded, h.cfg.Now().UTC(), dl.rest.n
		m.ETag, m.VersionID = out.ETag, out.VersionID
		log.InfoContext(ctx, "dequeue: landed", "key", m.Key, "bytes", dl.rest.n)
		h.cfg.Metrics.Add("ExportsLanded", 1, metrics.Job, in.Job)
		h.cfg.Metrics.Add("ExportBytes", float64(dl.rest.n), metrics.Job, in.Job)
	case isPreconditionFailed(err):
		// The key was taken between the marker check and now: a landing
		// that completed after its marker update was lost.
		r.Outcome = OutcomeAlreadyLanded
		m.State, m.LandedAt = StateLanded, h.cfg.Now().UTC()
		log.InfoContext(ctx, "dequeue: already landed (conditional write refused)", "key", m.Key)
	default:
		h.leftover(err, m.Key)
		return err
	}
	return nil
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
func (h *Handler) unpack(ctx context.Context, in Input, id string, m *Marker, markerKey string, r *FileResult) error {
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
	res, err := unpack.Package(ctx, h.s3, h.up, src, unpack.Target{
		Bucket: h.cfg.Bucket, Prefix: strings.TrimSuffix(m.Key, ".zip") + "/",
		Metadata: metadata(in, id),
	})
	var fe *unpack.FormatError
	if errors.As(err, &fe) {
		r.UnpackError = "unpack: " + err.Error()
		h.log.WarnContext(ctx, "dequeue: package not unpacked", "job", in.Job, idAttr(in), id, "key", m.Key, "error", err.Error())
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
		h.log.WarnContext(ctx, "dequeue: unpacked but the marker was not updated", "marker", markerKey, "error", err.Error())
	}
	return nil
}

// ack acknowledges d and completes r.
func (h *Handler) ack(ctx context.Context, log *slog.Logger, in Input, d *d365.DequeuedFile, r FileResult, fail func(string, error) FileResult) FileResult {
	if err := h.fno.Ack(ctx, in.ActivityID, d); err != nil {
		return fail("ack", err)
	}
	r.Acked = true
	log.InfoContext(ctx, "dequeue: acknowledged", "key", r.Key, "outcome", r.Outcome)
	h.cfg.Metrics.Add("ExportsAcked", 1, metrics.Job, in.Job)
	return r
}

// exportFailed counts an export that was not landed or acknowledged and
// tells a person, once per export (F&O hands it out again every 30
// minutes until it is acknowledged).
func (h *Handler) exportFailed(ctx context.Context, in Input, correlationID, stage, key string, err error) {
	h.cfg.Metrics.Add("ExportFailures", 1, metrics.Job, in.Job)
	what := in.Job + ": " + stage
	id := in.Job + " " + correlationID
	if correlationID == "" { // the dequeue itself failed: once an hour
		id = in.Job + " dequeue " + h.cfg.Now().UTC().Format("2006-01-02T15")
	}
	ctx, cancel := tellContext(ctx)
	defer cancel()
	h.cfg.Notify.Send(ctx, notify.Event{Kind: notify.ExportFailed, ID: id, What: what,
		Body:   "An export from F&O was not landed in S3 and acknowledged (" + err.Error() + "). F&O hands an unacknowledged export out again after 30 minutes; the next scheduled run tries again.",
		Fields: [][2]string{{"Job", in.Job}, {"Activity ID", in.ActivityID}, {"Correlation ID", correlationID}, {"Stage", stage}, {"Key", key}}})
}

// tellMissing tells a person, once per export, of an answer without a
// file: F&O hands it out again every 30 minutes unless the job
// acknowledges such answers (ackMissingFile), and either way someone should
// look at the export in F&O.
func (h *Handler) tellMissing(ctx context.Context, in Input, correlationID, reason, fnoMessage, record string, acked bool) {
	next := "F&O hands it out again every 30 minutes until it is acknowledged (set \"ackMissingFile\": true on the job to acknowledge such answers)."
	switch {
	case acked:
		next = "It was acknowledged, as the job says (ackMissingFile), so F&O will not hand it out again."
	case in.AckMissingFile:
		next = "The job acknowledges such answers (ackMissingFile), but the acknowledgement failed: F&O hands it out again in 30 minutes."
	}
	ctx, cancel := tellContext(ctx)
	defer cancel()
	h.cfg.Notify.Send(ctx, notify.Event{Kind: notify.ExportFailed, ID: in.Job + " " + correlationID + " missing", What: in.Job + ": no file",
		Body: "F&O handed out an export without a file to download (" + reason + "). " + next +
			" Look at the export's message in the recurring job's history in F&O.",
		Fields: [][2]string{{"Job", in.Job}, {"Activity ID", in.ActivityID}, {"Correlation ID", correlationID}, {"F&O's message", fnoMessage},
			{"Record", "s3://" + h.cfg.Bucket + "/" + record}}})
}

// tellContext is what a notification goes out on: a failure caused by the
// file's own deadline still reaches a person, in the seconds the run keeps
// past that deadline.
func tellContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return keepctx.Until(ctx, 3*time.Second)
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
		log.ErrorContext(ctx, "dequeue: missing file not recorded, not acknowledged", "reason", reason, "error", err.Error())
		return
	}
	defer func() { h.tellMissing(ctx, in, d.CorrelationID, reason, msg, key, r.Acked) }()
	if !in.AckMissingFile {
		log.WarnContext(ctx, "dequeue: no file; recorded, left for F&O to hand out again (ackMissingFile is false)",
			"reason", reason, "fnoMessage", msg, "record", key)
		return
	}
	if err := h.fno.Ack(ctx, in.ActivityID, d); err != nil {
		r.Stage, r.Error = "ack", "ack: "+err.Error()
		log.ErrorContext(ctx, "dequeue: missing file recorded, ack failed", "error", err.Error())
		return
	}
	r.Acked = true
	log.WarnContext(ctx, "dequeue: no file; recorded and acknowledged", "reason", reason, "fnoMessage", msg, "record", key)
}

// leftover logs a failed multipart upload that could not be aborted
// either (the uploader aborts it itself, with a context of its own even
// when the invocation's failed); the bucket's lifecycle rule for
// incomplete uploads is the last resort.
func (h *Handler) leftover(err error, key string) {
	var ue *s3upload.UploadError
	if errors.As(err, &ue) && ue.AbortErr != nil {
		h.log.Warn("dequeue: multipart upload left for the lifecycle rule", "key", key, "uploadId", ue.UploadID, "error", ue.AbortErr.Error())
	}
}

// metadata is the F&O identity stored with every object written for an
// export: the job, and the recurring job's activity and the file's
// correlation ID, or the data project and the execution ID. Values that
// are not printable ASCII are percent-encoded (S3 metadata travels in HTTP
// headers).
func metadata(in Input, id string) map[string]string {
	if in.IsPackage() {
		return map[string]string{
			"job":                 unpack.MetaValue(in.Job),
			"definition-group-id": unpack.MetaValue(in.DefinitionGroupID),
			"execution-id":        unpack.MetaValue(id),
		}
	}
	return map[string]string{
		"job":            unpack.MetaValue(in.Job),
		"activity-id":    unpack.MetaValue(in.ActivityID),
		"correlation-id": unpack.MetaValue(id),
	}
}

// idMeta is the metadata key that names the export's ID (metadata).
func idMeta(in Input) string {
	if in.IsPackage() {
		return "execution-id"
	}
	return "correlation-id"
}

// idAttr is the log attribute that names the export's ID.
func idAttr(in Input) string {
	if in.IsPackage() {
		return "executionId"
	}
	return "correlationId"
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
