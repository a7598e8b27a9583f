package d365test

import (
	"cmp"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The recurring-integration connector: /api/connector/{enqueue,dequeue,
// download,ack,jobstatus}/{activityId}. See
// https://learn.microsoft.com/en-us/dynamics365/fin-ops-core/dev-itpro/data-entities/recurring-integrations

// activityHandler serves a connector call on the activity in its path.
type activityHandler func(w http.ResponseWriter, r *http.Request, c *call, a *activity)

// forActivity runs h once the activity in the path is known and the caller
// is on its authorization policy; otherwise it answers as F&O does.
func (e *Emulator) forActivity(h activityHandler) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, c *call) {
		if a := e.activityFor(w, c); a != nil {
			h(w, r, c, a)
		}
	}
}

// activityFor resolves the activity in the path and checks the caller is on
// its authorization policy. On failure it has answered and returns nil.
func (e *Emulator) activityFor(w http.ResponseWriter, c *call) *activity {
	g, ok := normGUID(c.seg[3])
	e.mu.Lock()
	a := e.st.activities[g]
	e.mu.Unlock()
	if !ok || a == nil {
		writeGenericError(w, e.opts.UnknownActivityStatus, fmt.Sprintf("Activity %s was not found.", c.seg[3]))
		return nil
	}
	for _, id := range a.AllowedApps {
		if strings.EqualFold(id, c.appID) {
			return a
		}
	}
	status := http.StatusUnauthorized
	if e.opts.Unauthorized403 {
		status = http.StatusForbidden
	}
	writeGenericError(w, status, fmt.Sprintf("Application %s is not authorized to use activity %s.", c.appID, a.id))
	return nil
}

// capBuffer keeps the first max bytes written to it and drops the rest.
type capBuffer struct {
	b   []byte
	max int
}

func (c *capBuffer) Write(p []byte) (int, error) {
	if room := c.max - len(c.b); room > 0 {
		c.b = append(c.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (e *Emulator) enqueue(w http.ResponseWriter, r *http.Request, c *call, a *activity) {
	q := r.URL.Query()
	sum := sha256.New()
	keep := &capBuffer{max: e.opts.KeepEnqueuedBodyBytes}
	sink := io.MultiWriter(sum, keep)
	if c.fault != nil && c.fault.ResetAfterBytes > 0 {
		io.CopyN(sink, r.Body, c.fault.ResetAfterBytes)
		panic(http.ErrAbortHandler) // drop the connection; nothing is stored
	}
	n, err := io.Copy(sink, r.Body)
	if err != nil {
		writeGenericError(w, http.StatusBadRequest, "The request body could not be read.")
		return
	}
	m := &message{
		id: newGUID(), activityID: a.id, entity: q.Get("entity"), company: q.Get("company"),
		externalID: r.Header.Get("x-ms-dyn-externalidentifier"), size: n,
		sha256: hex.EncodeToString(sum.Sum(nil)), body: keep.b, status: "Enqueued",
		enqueuedAt: e.clock.Now(),
	}
	e.mu.Lock()
	m.seq = len(e.st.messages)
	e.st.messages = append(e.st.messages, m)
	e.st.msgByID[m.id] = m
	e.mu.Unlock()
	shape := e.opts.EnqueueAnswer
	if c.fault != nil && c.fault.EnqueueAnswer != "" {
		shape = c.fault.EnqueueAnswer
	}
	e.writeEnqueueAnswer(w, http.StatusOK, shape, m.id)
}

// export is an outbound message waiting in a recurring export job's queue.
type export struct {
	corr, blobID, activity string
	body                   []byte
	size                   int64 // -1: unknown (Generate without Size)
	generate               func(io.Writer) error
	fileName, disposition  string
	contentType            string
	queuedAt               time.Time

	visibleAt   time.Time
	receipt     string
	lastDequeue time.Time
	dequeues    int
	acked       bool
}

// Export is a file an export job has produced, waiting to be dequeued.
type Export struct {
	Body []byte
	// Size is the body's length. With Generate it is what Generate will
	// write (0: unknown, served without Content-Length).
	Size int64
	// Generate streams the body, for bodies too big to hold.
	Generate func(w io.Writer) error
	FileName string
	// ContentDisposition, if set, is download's Content-Disposition header
	// exactly as given, in place of the one built from FileName: for the
	// forms servers send (unquoted, filename*, RFC 2047 encoded words).
	ContentDisposition string
	// ContentType is download's Content-Type (default
	// application/octet-stream).
	ContentType string
}

// QueueExport puts an export in activityID's queue, visible at once, and
// returns its correlation ID. An activity not added yet is added as a
// Package job.
func (e *Emulator) QueueExport(activityID string, x Export) string {
	g, ok := normGUID(activityID)
	if !ok {
		panic("d365test: QueueExport: activity ID " + activityID + " is not a GUID")
	}
	ex := &export{
		corr: newGUID(), blobID: newGUID(), activity: g, generate: x.Generate,
		fileName: x.FileName, disposition: x.ContentDisposition, contentType: x.ContentType, queuedAt: e.clock.Now(),
	}
	switch {
	case x.Generate != nil && x.Size > 0:
		ex.size = x.Size
	case x.Generate != nil:
		ex.size = -1
	default:
		ex.body = append([]byte(nil), x.Body...)
		ex.size = int64(len(x.Body))
	}
	ex.visibleAt = ex.queuedAt
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.st.activities[g] == nil {
		e.st.activities[g] = &activity{id: g, Activity: Activity{
			Name: "Export-" + g[:8], Kind: Package, AllowedApps: []string{e.opts.ClientID}}}
	}
	e.st.exports[ex.corr] = ex
	e.st.queues[g] = append(e.st.queues[g], ex)
	return ex.corr
}

// Acked returns the correlation IDs acked on activityID, in ack order.
func (e *Emulator) Acked(activityID string) []string {
	g, _ := normGUID(activityID)
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.st.ackOrder[g]...)
}

// Pending counts activityID's exports not acked yet (visible or hidden).
func (e *Emulator) Pending(activityID string) int {
	g, _ := normGUID(activityID)
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, x := range e.st.queues[g] {
		if !x.acked {
			n++
		}
	}
	return n
}

// dequeueAnswer is dequeue's 200 body; the field names are F&O's, capital L
// in DownLoad included.
type dequeueAnswer struct {
	CorrelationID            string  `json:"CorrelationId"`
	PopReceipt               string  `json:"PopReceipt"`
	DownloadLocation         *string `json:"DownloadLocation"`
	IsDownLoadFileExist      bool    `json:"IsDownLoadFileExist"`
	FileDownLoadErrorMessage *string `json:"FileDownLoadErrorMessage"`
	LastDequeueDateTime      *string `json:"LastDequeueDateTime"`
}

func (e *Emulator) dequeue(w http.ResponseWriter, r *http.Request, c *call, a *activity) {
	now := e.clock.Now()
	e.mu.Lock()
	var x *export
	for _, cand := range e.st.queues[a.id] {
		if !cand.acked && !now.Before(cand.visibleAt) {
			x = cand
			break
		}
	}
	if x == nil {
		e.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
		return
	}
	ans := dequeueAnswer{CorrelationID: x.corr, PopReceipt: newReceipt(), IsDownLoadFileExist: true}
	if x.dequeues > 0 {
		s := dotnetTime(x.lastDequeue)
		ans.LastDequeueDateTime = &s
	}
	x.receipt, x.lastDequeue, x.visibleAt = ans.PopReceipt, now, now.Add(e.opts.VisibilityTimeout)
	x.dequeues++
	e.mu.Unlock()

	base := e.foURL
	switch {
	case c.fault != nil && c.fault.ForeignDownloadHost:
		base = e.foreignURL
	case e.opts.HTTPDownloadLocation:
		base = "http://127.0.0.1:80"
	}
	loc := fmt.Sprintf("%s/api/connector/download/%s?correlation-id=%s&blob=%s", base, a.id, x.corr, x.blobID)
	if c.fault == nil || !c.fault.NullDownloadLocation {
		ans.DownloadLocation = &loc
	}
	if c.fault != nil && c.fault.FileMissing {
		msg := "The file for correlation ID " + x.corr + " does not exist in blob storage."
		ans.IsDownLoadFileExist, ans.FileDownLoadErrorMessage = false, &msg
	}
	writeJSON(w, http.StatusOK, ans)
}

// newReceipt makes an opaque pop receipt with characters ('+', '/', '=')
// that a client must echo byte for byte.
func newReceipt() string {
	var b [20]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return base64.StdEncoding.EncodeToString(b[:])
}

// exportFor finds the export a download URL names.
func (e *Emulator) exportFor(activityID string, r *http.Request) *export {
	q := r.URL.Query()
	corr, _ := normGUID(q.Get("correlation-id"))
	blob, _ := normGUID(q.Get("blob"))
	e.mu.Lock()
	defer e.mu.Unlock()
	x := e.st.exports[corr]
	if x == nil || (activityID != "" && x.activity != activityID) || x.blobID != blob {
		return nil
	}
	return x
}

func (e *Emulator) download(w http.ResponseWriter, r *http.Request, c *call, a *activity) {
	x := e.exportFor(a.id, r)
	if x == nil {
		writeGenericError(w, http.StatusNotFound, "The file was not found.")
		return
	}
	serveExport(w, r, x, c.fault)
}

// foreignDownload serves the same files on the foreign host, without
// auth: the point is to record whether a token was sent here.
func (e *Emulator) foreignDownload(w http.ResponseWriter, r *http.Request, c *call) {
	g, _ := normGUID(c.seg[3])
	x := e.exportFor(g, r)
	if x == nil {
		http.Error(w, "The file was not found.", http.StatusNotFound)
		return
	}
	serveExport(w, r, x, c.fault)
}

func serveExport(w http.ResponseWriter, r *http.Request, x *export, f *Fault) {
	h := w.Header()
	h.Set("Content-Type", cmp.Or(x.contentType, "application/octet-stream"))
	switch {
	case x.disposition != "":
		h["Content-Disposition"] = []string{x.disposition} // as given, even if malformed
	case x.fileName != "":
		if v := mime.FormatMediaType("attachment", map[string]string{"filename": x.fileName}); v != "" {
			h.Set("Content-Disposition", v)
		}
	}
	if x.size >= 0 {
		h.Set("Content-Length", strconv.FormatInt(x.size, 10))
	}
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	streamBody(w, f, func(dst io.Writer) error {
		if x.generate != nil {
			return x.generate(dst)
		}
		_, err := dst.Write(x.body)
		return err
	})
}

// errCut stops a body at Fault.ResetAfterBytes.
var errCut = errors.New("d365test: body cut by fault")

// cutWriter passes through at most left bytes, then fails with errCut.
type cutWriter struct {
	w    io.Writer
	left int64
}

func (c *cutWriter) Write(p []byte) (int, error) {
	if int64(len(p)) <= c.left {
		n, err := c.w.Write(p)
		c.left -= int64(n)
		return n, err
	}
	n, err := c.w.Write(p[:c.left])
	c.left -= int64(n)
	if err == nil {
		err = errCut
	}
	return n, err
}

// streamBody runs write against w. With a ResetAfterBytes fault the body
// stops after that many bytes and the connection is dropped, so the client
// sees a short body. A write that fails midway also drops the connection: a
// truncated body must never look complete.
func streamBody(w http.ResponseWriter, f *Fault, write func(io.Writer) error) {
	var dst io.Writer = w
	if f != nil && f.ResetAfterBytes > 0 {
		dst = &cutWriter{w: w, left: f.ResetAfterBytes}
	}
	if err := write(dst); err != nil {
		http.NewResponseController(w).Flush()
		panic(http.ErrAbortHandler)
	}
}

func (e *Emulator) ack(w http.ResponseWriter, r *http.Request, c *call, a *activity) {
	var body struct {
		CorrelationID string `json:"CorrelationId"`
		PopReceipt    string `json:"PopReceipt"`
	}
	raw, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil || json.Unmarshal(raw, &body) != nil || body.CorrelationID == "" || body.PopReceipt == "" {
		writeGenericError(w, http.StatusBadRequest, "The ack body must be the dequeue answer (CorrelationId, PopReceipt, DownloadLocation).")
		return
	}
	corr, _ := normGUID(body.CorrelationID)
	e.mu.Lock()
	x := e.st.exports[corr]
	if x == nil || x.activity != a.id || x.receipt == "" || x.receipt != body.PopReceipt {
		e.mu.Unlock()
		writeGenericError(w, e.opts.StaleAckStatus, "The message was not found or the pop receipt is not the latest.")
		return
	}
	if !x.acked && (c.fault == nil || !c.fault.DropAck) {
		x.acked = true
		e.st.ackOrder[a.id] = append(e.st.ackOrder[a.id], x.corr)
	}
	e.mu.Unlock()
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusOK)
}

// DataJobState values of jobstatus, by message status.
var dataJobState = map[string]int{
	"Enqueued": 0, "Dequeued": 1, "Downloaded": 2, "Acked": 3, "Preprocessing": 4, "Processing": 4,
	"Processed": 5, "ProcessedWithErrors": 6, "PostProcessingFailed": 7, "PreProcessingError": 8,
}

func (e *Emulator) jobStatus(w http.ResponseWriter, r *http.Request, c *call, a *activity) {
	id, _ := normGUID(r.URL.Query().Get("jobId"))
	writeJSON(w, http.StatusOK, e.jobStatusAnswer(a, id))
}

func (e *Emulator) jobStatusAnswer(a *activity, id string) map[string]any {
	e.mu.Lock()
	defer e.mu.Unlock()
	m := e.st.msgByID[id]
	if m == nil || m.activityID != a.id {
		return map[string]any{"DataJobStatus": nil, "ExecutionLog": "", "ExecutionDetail": nil}
	}
	st := map[string]any{
		"DataProject": a.Name, "DataJobIdentifier": m.id, "ExternalIdentifier": m.externalID,
		"ExecutionIdentifier": m.execID, "DataJobStartedDateTime": nil, "DataJobCompletedDateTime": nil,
		"DataJobState": dataJobState[m.status],
	}
	if !m.startedAt.IsZero() {
		st["DataJobStartedDateTime"] = dotnetTime(m.startedAt)
	}
	if !m.completedAt.IsZero() {
		st["DataJobCompletedDateTime"] = dotnetTime(m.completedAt)
	}
	var detail any
	if x := e.executionLocked(m.execID); m.execID != "" && x != nil && terminalExec(x.status) {
		detail = e.entitySummariesLocked(x)
	}
	return map[string]any{"DataJobStatus": st, "ExecutionLog": "", "ExecutionDetail": detail}
}
