package d365test

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Fault is an injected misbehaviour. It applies to the next Count requests
// to Endpoint (Count 0: every one until ClearFaults). Faults are matched in
// the order injected; one fault applies per request.
//
// With Status set, the request is answered with that status before auth and
// before the handler, so it has no side effect (after Delay, if set). Without
// Status, the handler runs and the other fields change what it does.
type Fault struct {
	// Endpoint is a name as in Requests ("enqueue", "GetMessageStatus",
	// "token", "blob-put", ...). "" matches any F&O endpoint, never the
	// Entra, blob or foreign listeners.
	Endpoint string
	Count    int
	// Status answers the request with this status (429, 500, 502, ...).
	Status int
	// RetryAfter is the Retry-After header (seconds) for a 429; 0 means 1,
	// negative omits the header.
	RetryAfter int
	// Delay holds the answer back this long. With Status, nothing else
	// happens; without it, the handler's side effects happen first (a slow
	// ImportFromPackage still creates its execution; a slow enqueue still
	// stores its message). If the client gives up or Close is called first,
	// the connection is dropped without an answer.
	Delay time.Duration
	// DropAck: ack answers 200 but is not recorded (a lost ack).
	DropAck bool
	// NullDownloadLocation: dequeue answers 200 with DownloadLocation null.
	NullDownloadLocation bool
	// FileMissing: dequeue answers IsDownLoadFileExist=false with a
	// FileDownLoadErrorMessage.
	FileMissing bool
	// ForeignDownloadHost: dequeue's DownloadLocation points at the foreign
	// listener (https://localhost:PORT/...), which records whether an
	// Authorization header arrives (ForeignHostSawToken).
	ForeignDownloadHost bool
	// ResetAfterBytes: on enqueue or blob-put, close the connection after
	// reading this many body bytes (nothing is stored); on download,
	// foreign-download or blob-get, cut the body after this many bytes.
	ResetAfterBytes int64
	// EmptyExecutionID: ExportToPackage (and its variants) answers 200 with
	// the empty GUID and starts nothing.
	EmptyExecutionID bool
	// EnqueueAnswer: on enqueue, the message is stored and answered in
	// this shape. With Status (e.g. 200 from a front door), nothing is
	// stored and the shape, with a made-up ID, is the whole answer, on
	// enqueue or any other F&O endpoint (a download answered by a sign-in
	// page, say).
	EnqueueAnswer AnswerShape
	// Cause: with a Status of 400 or more on an F&O endpoint (connector
	// or OData), the answer is F&O's error body: the generic message "An
	// error has occurred." with Cause in innererror.message.
	Cause string
	// AADSTS: the token endpoint refuses the request with Entra ID's
	// answer for this code (7000222 expired secret, 7000215 wrong
	// secret, 700016 unknown app, 90002 unknown tenant, 7000112 disabled
	// app; others answer invalid_request).
	AADSTS int
}

type faultState struct {
	f    Fault
	left int // remaining uses; -1 for unlimited
}

// Inject adds a fault.
func (e *Emulator) Inject(f Fault) {
	e.mu.Lock()
	defer e.mu.Unlock()
	left := f.Count
	if left <= 0 {
		left = -1
	}
	e.st.faults = append(e.st.faults, &faultState{f: f, left: left})
}

// ClearFaults removes every fault (SetFaultFunc's function stays).
func (e *Emulator) ClearFaults() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.st.faults = nil
}

// FaultFunc decides a fault for one request: endpoint is its name as in
// Requests, r the request (its headers and URL; the body is the handler's
// and must not be read). nil means no fault.
type FaultFunc func(endpoint string, r *http.Request) *Fault

// SetFaultFunc makes fn decide a fault for each request, on any listener,
// that no injected fault matched: random faults from a seed, faults aimed at
// one file, the Nth call. Its answer applies to that request alone. fn may
// be called concurrently; nil removes it.
func (e *Emulator) SetFaultFunc(fn FaultFunc) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.st.faultFunc = fn
}

// takeFaultLocked finds the first fault matching the request, uses it up
// once, and returns a copy.
func (e *Emulator) takeFaultLocked(h host, endpoint string) *Fault {
	for i, fs := range e.st.faults {
		match := fs.f.Endpoint == endpoint || (fs.f.Endpoint == "" && h == hostFO)
		if !match {
			continue
		}
		f := fs.f
		if fs.left > 0 {
			fs.left--
			if fs.left == 0 {
				e.st.faults = append(e.st.faults[:i:i], e.st.faults[i+1:]...)
			}
		}
		return &f
	}
	return nil
}

// throttleText is the message of F&O's 429 answers; {0} is the wait in
// seconds. See
// https://learn.microsoft.com/en-us/dynamics365/fin-ops-core/dev-itpro/data-entities/priority-based-throttling
const throttleText = "This request could not be processed at this time due to system experiencing high resource utilization. Retry the request after {0} seconds"

func (e *Emulator) writeFault(w http.ResponseWriter, r *http.Request, h host, f *Fault) {
	if f.Status == http.StatusTooManyRequests {
		secs := f.RetryAfter
		if secs == 0 {
			secs = 1
		}
		if secs > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(secs))
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(f.Status)
		fmt.Fprint(w, strings.ReplaceAll(throttleText, "{0}", strconv.Itoa(max(secs, 0))))
		return
	}
	switch {
	case f.EnqueueAnswer != "" && h == hostFO:
		e.writeEnqueueAnswer(w, f.Status, f.EnqueueAnswer, newGUID())
	case h == hostFO && f.Status >= 400 && f.Cause != "":
		writeGenericError(w, f.Status, f.Cause)
	case h == hostFO && f.Status >= 400 && strings.Contains(strings.ToLower(r.URL.Path), "/data/"):
		writeGenericError(w, f.Status, http.StatusText(f.Status))
	case h == hostBlob && f.Status >= 400:
		writeBlobError(w, f.Status, "InternalError", "Server encountered an internal error. Please try again after some time.", "")
	case h == hostEntra && f.Status >= 400:
		writeJSON(w, f.Status, map[string]any{"error": "temporarily_unavailable",
			"error_description": fmt.Sprintf("AADSTS90000: injected fault (%d).", f.Status)})
	default:
		if f.Status == http.StatusNoContent || f.Status == http.StatusNotModified {
			w.WriteHeader(f.Status)
			return
		}
		http.Error(w, http.StatusText(f.Status), f.Status)
	}
}

// Requests counts the requests routed to an endpoint, including those
// answered by a fault or refused for auth (see the package doc for names).
func (e *Emulator) Requests(endpoint string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.st.requests[endpoint]
}

// Faulted counts the requests to an endpoint answered by a Status fault
// (the handler did not run): Requests-Faulted were processed.
func (e *Emulator) Faulted(endpoint string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.st.faulted[endpoint]
}

// TotalRequests counts every request to the F&O listener (not Entra, blob
// or foreign), whatever the path or outcome.
func (e *Emulator) TotalRequests() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.st.total
}

// TokenRequests counts requests to the token endpoints (v2 and v1).
func (e *Emulator) TokenRequests() int { return e.Requests("token") }

// ForeignHostSawToken reports whether the foreign listener ever received an
// Authorization header.
func (e *Emulator) ForeignHostSawToken() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.st.foreignSawToken
}

// BlobSawToken reports whether the blob listener ever received an
// Authorization header (clients must send only the SAS there).
func (e *Emulator) BlobSawToken() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.st.blobSawToken
}
