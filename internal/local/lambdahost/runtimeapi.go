package lambdahost

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Runtime API paths (https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html)
// and the two Extensions API paths aws-lambda-go's WithEnableSIGTERM uses.
const (
	pathNext      = "GET /2018-06-01/runtime/invocation/next"
	pathResponse  = "POST /2018-06-01/runtime/invocation/{id}/response"
	pathError     = "POST /2018-06-01/runtime/invocation/{id}/error"
	pathInitError = "POST /2018-06-01/runtime/init/error"
	pathExtReg    = "POST /2020-01-01/extension/register"
	pathExtNext   = "GET /2020-01-01/extension/event/next"

	headerRequestID   = "Lambda-Runtime-Aws-Request-Id"
	headerDeadline    = "Lambda-Runtime-Deadline-Ms"
	headerFunctionARN = "Lambda-Runtime-Invoked-Function-Arn"
	headerTraceID     = "Lambda-Runtime-Trace-Id"
	headerErrorType   = "Lambda-Runtime-Function-Error-Type"
	trailerErrorType  = "Lambda-Runtime-Function-Error-Type"
	trailerErrorBody  = "Lambda-Runtime-Function-Error-Body"
	headerExtensionID = "Lambda-Extension-Identifier"

	// MaxPayload is Lambda's limit for a synchronous request or response
	// payload (6 MB).
	MaxPayload = 6 * 1024 * 1024

	maxErrorDocument = 1 << 20
)

// invocation is one event handed to the runtime.
type invocation struct {
	id       string
	payload  []byte
	deadline time.Time
	arn      string
	traceID  string
	done     chan outcome // buffered; receives exactly one outcome
	once     sync.Once
}

type outcome struct {
	payload []byte
	err     *FunctionError
}

func (inv *invocation) finish(o outcome) {
	inv.once.Do(func() { inv.done <- o })
}

// answered returns the runtime's outcome if it has already come, without
// waiting.
func (inv *invocation) answered() (outcome, bool) {
	select {
	case o := <-inv.done:
		return o, true
	default:
		return outcome{}, false
	}
}

// process is one execution environment: a running bootstrap and the Runtime
// API server it talks to. Every process gets its own listener, so a request
// from a killed process can never touch its successor's invocations.
type process struct {
	name    string // function name, for the extension registration reply
	cmd     *exec.Cmd
	srv     *http.Server
	addr    string
	started time.Time

	readyOnce sync.Once
	ready     chan struct{} // closed on the first /next
	readyAt   time.Time     // written before ready is closed

	initOnce   sync.Once
	initFailed chan struct{} // closed on /runtime/init/error
	initErr    *FunctionError

	exited  chan struct{} // closed when the process has been reaped
	waitErr error         // written before exited is closed

	invocations chan *invocation // unbuffered: a send means the runtime took it

	mu      sync.Mutex
	current *invocation

	extensions atomic.Bool   // an extension registered, so SIGTERM before SIGKILL
	grace      time.Duration // written before spindown is closed

	stopOnce     sync.Once
	stop         chan struct{} // closed once the process is gone or going without grace
	spindownOnce sync.Once
	spindown     chan struct{} // closed when shutdown starts: SHUTDOWN for extensions
	shutdownOnce sync.Once
}

func newProcess(name string) (*process, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &process{
		name:        name,
		addr:        ln.Addr().String(),
		ready:       make(chan struct{}),
		initFailed:  make(chan struct{}),
		exited:      make(chan struct{}),
		invocations: make(chan *invocation),
		stop:        make(chan struct{}),
		spindown:    make(chan struct{}),
	}
	mux := http.NewServeMux()
	mux.HandleFunc(pathNext, p.handleNext)
	mux.HandleFunc(pathResponse, p.handleResponse)
	mux.HandleFunc(pathError, p.handleError)
	mux.HandleFunc(pathInitError, p.handleInitError)
	mux.HandleFunc(pathExtReg, p.handleExtensionRegister)
	mux.HandleFunc(pathExtNext, p.handleExtensionNext)
	p.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = p.srv.Serve(ln) }()
	return p, nil
}

// launch starts cmd; the process must already be configured.
func (p *process) launch(cmd *exec.Cmd) error {
	p.cmd = cmd
	p.started = time.Now()
	if err := cmd.Start(); err != nil {
		p.closeStop()
		_ = p.srv.Close()
		return err
	}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	return nil
}

func (p *process) pid() int {
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

func (p *process) hasExited() bool { return isDone(p.exited) }

// hasInitFailed reports whether the runtime has posted an init error.
func (p *process) hasInitFailed() bool { return isDone(p.initFailed) }

// isDone reports whether ch is closed, without waiting.
func isDone(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func (p *process) initDuration() time.Duration {
	select {
	case <-p.ready:
		return p.readyAt.Sub(p.started)
	default:
		return 0
	}
}

func (p *process) closeStop() { p.stopOnce.Do(func() { close(p.stop) }) }

func (p *process) closeSpindown() { p.spindownOnce.Do(func() { close(p.spindown) }) }

// shutdown ends the process: SIGTERM first, with grace, when an extension
// registered (Lambda's contract for functions that asked for SIGTERM), then
// SIGKILL, then the API server. It waits until the process is reaped.
func (p *process) shutdown(grace time.Duration) {
	p.shutdownOnce.Do(func() {
		p.grace = grace
		p.closeSpindown()
		if grace > 0 && p.extensions.Load() && !p.hasExited() {
			// The runtime's /next stays blocked meanwhile, as on Lambda.
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
			t := time.NewTimer(grace)
			select {
			case <-p.exited:
			case <-t.C:
			}
			t.Stop()
		}
		p.closeStop()
		_ = p.cmd.Process.Kill()
		<-p.exited
		_ = p.srv.Close()
	})
}

// exitError describes a process that ended while it owed an answer.
func (p *process) exitError() *FunctionError {
	msg := "Runtime exited without providing a reason"
	var ee *exec.ExitError
	if errors.As(p.waitErr, &ee) {
		msg = "Runtime exited with error: " + ee.ProcessState.String()
	}
	return &FunctionError{Type: ErrorTypeExit, Message: msg}
}

func (p *process) handleNext(w http.ResponseWriter, r *http.Request) {
	p.readyOnce.Do(func() {
		p.readyAt = time.Now()
		close(p.ready)
	})
	// A runtime that asks for the next event has finished the current one;
	// if it never answered, that is its answer.
	p.mu.Lock()
	if prev := p.current; prev != nil {
		p.current = nil
		prev.finish(outcome{err: &FunctionError{Type: ErrorTypeInvalidResponse,
			Message: "runtime asked for the next event without answering " + prev.id}})
	}
	p.mu.Unlock()

	select {
	case inv := <-p.invocations:
		p.mu.Lock()
		p.current = inv
		p.mu.Unlock()
		h := w.Header()
		h.Set(headerRequestID, inv.id)
		h.Set(headerDeadline, strconv.FormatInt(inv.deadline.UnixMilli(), 10))
		h.Set(headerFunctionARN, inv.arn)
		h.Set(headerTraceID, inv.traceID)
		h.Set("Content-Type", "application/json")
		h.Set("Content-Length", strconv.Itoa(len(inv.payload)))
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(inv.payload)
	case <-p.stop:
		apiError(w, http.StatusServiceUnavailable, "ShuttingDown", "execution environment is shutting down")
	case <-r.Context().Done():
	}
}

// take returns the in-flight invocation with the given ID and clears it.
func (p *process) take(id string) (*invocation, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.current == nil || p.current.id != id {
		return nil, false
	}
	inv := p.current
	p.current = nil
	return inv, true
}

func (p *process) handleResponse(w http.ResponseWriter, r *http.Request) {
	inv, ok := p.take(r.PathValue("id"))
	if !ok {
		apiError(w, http.StatusBadRequest, "InvalidRequestID", "no invocation in flight with ID "+r.PathValue("id"))
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxPayload+1))
	switch {
	case err != nil:
		inv.finish(outcome{err: &FunctionError{Type: ErrorTypeInvalidResponse, Message: "reading response: " + err.Error()}})
	case len(body) > MaxPayload:
		inv.finish(outcome{err: &FunctionError{Type: ErrorTypeResponseTooLarge,
			Message: "Response payload size exceeded maximum allowed payload size (" + strconv.Itoa(MaxPayload) + " bytes)."}})
		apiError(w, http.StatusRequestEntityTooLarge, ErrorTypeResponseTooLarge, "response too large")
		return
	case r.Trailer.Get(trailerErrorType) != "":
		// A streamed response that failed part way: aws-lambda-go reports the
		// error in trailers.
		doc, _ := base64.StdEncoding.DecodeString(r.Trailer.Get(trailerErrorBody))
		inv.finish(outcome{err: parseErrorDocument(doc, r.Trailer.Get(trailerErrorType))})
	default:
		inv.finish(outcome{payload: body})
	}
	accepted(w)
}

func (p *process) handleError(w http.ResponseWriter, r *http.Request) {
	inv, ok := p.take(r.PathValue("id"))
	if !ok {
		apiError(w, http.StatusBadRequest, "InvalidRequestID", "no invocation in flight with ID "+r.PathValue("id"))
		return
	}
	body, _ := io.ReadAll(io.LimitReader(r.Body, maxErrorDocument))
	inv.finish(outcome{err: parseErrorDocument(body, r.Header.Get(headerErrorType))})
	accepted(w)
}

func (p *process) handleInitError(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, maxErrorDocument))
	fe := parseErrorDocument(body, r.Header.Get(headerErrorType))
	fe.Init = true
	p.initOnce.Do(func() {
		p.initErr = fe
		close(p.initFailed)
	})
	accepted(w)
}

func (p *process) handleExtensionRegister(w http.ResponseWriter, r *http.Request) {
	p.extensions.Store(true)
	_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, maxErrorDocument))
	w.Header().Set(headerExtensionID, newRequestID())
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]string{
		"functionName":    p.name,
		"functionVersion": "$LATEST",
		"handler":         "bootstrap",
	})
}

// handleExtensionNext blocks until shutdown, like the real API for an
// extension that subscribed to no events.
func (p *process) handleExtensionNext(w http.ResponseWriter, r *http.Request) {
	select {
	case <-p.spindown:
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"eventType":      "SHUTDOWN",
			"shutdownReason": "spindown",
			"deadlineMs":     time.Now().Add(p.grace).UnixMilli(),
		})
	case <-r.Context().Done():
	}
}

func accepted(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	_, _ = io.WriteString(w, `{"status":"OK"}`)
}

func apiError(w http.ResponseWriter, status int, typ, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"errorType": typ, "errorMessage": msg})
}
