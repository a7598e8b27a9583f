// Package lambdahost is local tooling that runs a built Lambda bootstrap on
// this machine behind an in-process Lambda Runtime API, without Docker or the
// SAM CLI; it never ships in a Lambda bootstrap.
//
// A Host is one execution environment: one process, one invocation at a
// time, kept warm between invocations. Like Lambda, it kills the process
// when an invocation passes its deadline and starts a fresh one (a cold
// start) for the next invocation; a process that exits on its own (a panic
// in aws-lambda-go, os.Exit) is replaced the same way.
//
// Errors are split the way Lambda's Invoke API splits them: an invocation
// that ran and failed (handler error, panic, timeout, init failure, runtime
// exit) returns a Result whose Error is set and a nil error; the error
// return is for the host's own failures (closed host, cancelled context,
// a bootstrap that cannot be started).
package lambdahost

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"time"
)

// Defaults, as in Lambda.
const (
	DefaultTimeout     = 3 * time.Second
	DefaultInitTimeout = 10 * time.Second
	DefaultMemoryMB    = 128
	DefaultRegion      = "us-east-1"

	// AccountID is the account in the function ARN the host hands out. It is
	// moto's fixed account, so ARNs line up with the local stand-ins.
	AccountID = "123456789012"

	// DefaultShutdownGrace is Function.ShutdownGrace's default.
	DefaultShutdownGrace = 500 * time.Millisecond
)

// Function describes the function a Host runs.
type Function struct {
	// Name is AWS_LAMBDA_FUNCTION_NAME and the last part of the function
	// ARN. Default "function".
	Name string
	// Bootstrap is the path of the executable (a Go main package built with
	// -tags lambda.norpc). Its directory is LAMBDA_TASK_ROOT and the working
	// directory, as /var/task is on Lambda. Required.
	Bootstrap string
	// Env is the function's own environment, applied over the variables
	// Lambda defines. It may set AWS_REGION and the AWS_LAMBDA_LOG_* pair,
	// but never the Runtime API address, name, version, memory size,
	// LAMBDA_TASK_ROOT or _HANDLER: those are the host's.
	Env map[string]string
	// Timeout bounds each invocation, from the moment the runtime is handed
	// the event; it is also the deadline the handler's context carries.
	// Default 3s.
	Timeout time.Duration
	// InitTimeout bounds the init phase (process start to its first request
	// for an event). Default 10s.
	InitTimeout time.Duration
	// MemoryMB is AWS_LAMBDA_FUNCTION_MEMORY_SIZE; nothing enforces it.
	// Default 128.
	MemoryMB int
	// Region is AWS_REGION and AWS_DEFAULT_REGION and the ARN's region.
	// Default: Env["AWS_REGION"], then us-east-1.
	Region string
	// LogFormat ("JSON" or "Text") and LogLevel become AWS_LAMBDA_LOG_FORMAT
	// and (with JSON only, as on Lambda) AWS_LAMBDA_LOG_LEVEL, which
	// aws-lambda-go's lambdacontext.NewLogger reads.
	LogFormat string
	LogLevel  string
	// Stdout and Stderr receive the process's output (CloudWatch Logs on
	// Lambda). Nil discards it.
	Stdout io.Writer
	Stderr io.Writer
	// ShutdownGrace is how long Close waits between SIGTERM and SIGKILL for
	// a function that registered an extension (aws-lambda-go's
	// WithEnableSIGTERM does). Default 500ms, Lambda's allowance.
	ShutdownGrace time.Duration
}

// Result is the outcome of one invocation.
type Result struct {
	// RequestID is the Lambda-Runtime-Aws-Request-Id the runtime was given.
	RequestID string
	// Payload is the function's response, or on a function error the error
	// document ({"errorType","errorMessage",...}).
	Payload []byte
	// Error is set when the invocation failed; see FunctionError.
	Error *FunctionError
	// Deadline is the deadline handed to the runtime (Lambda-Runtime-Deadline-Ms).
	Deadline time.Time
	// Duration runs from handing the event to the runtime to its answer.
	Duration time.Duration
	// InitDuration is set on a cold start: the new process's time from start
	// to its first request for an event.
	InitDuration time.Duration
	// PID is the process that ran the invocation.
	PID int
}

// Err returns Error as an error, or nil when the invocation succeeded. Use
// it rather than assigning Error to an error variable: a nil
// *FunctionError in an error interface is not nil.
func (r Result) Err() error {
	if r.Error == nil {
		return nil
	}
	return r.Error
}

// Host is one execution environment for one function. Its methods are safe
// for concurrent use; invocations are served one at a time.
type Host struct {
	fn  Function
	arn string
	sem chan struct{} // one invocation at a time

	mu        sync.Mutex
	p         *process
	reported  *process // the process whose init duration was already reported
	closed    bool
	coldStart time.Duration
}

// Start validates fn and launches its process, which initializes in the
// background; the first Invoke waits for it. ctx only bounds Start itself:
// the process lives until Close.
func Start(ctx context.Context, fn Function) (*Host, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if fn.Bootstrap == "" {
		return nil, errors.New("lambdahost: Function.Bootstrap is required")
	}
	abs, err := filepath.Abs(fn.Bootstrap)
	if err != nil {
		return nil, fmt.Errorf("lambdahost: bootstrap %s: %w", fn.Bootstrap, err)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return nil, fmt.Errorf("lambdahost: bootstrap: %w", err)
	}
	if fi.IsDir() || fi.Mode().Perm()&0o111 == 0 {
		return nil, fmt.Errorf("lambdahost: bootstrap %s is not an executable file", abs)
	}
	fn.Bootstrap = abs
	if fn.Name == "" {
		fn.Name = "function"
	}
	if fn.Timeout <= 0 {
		fn.Timeout = DefaultTimeout
	}
	if fn.InitTimeout <= 0 {
		fn.InitTimeout = DefaultInitTimeout
	}
	if fn.MemoryMB <= 0 {
		fn.MemoryMB = DefaultMemoryMB
	}
	if fn.ShutdownGrace <= 0 {
		fn.ShutdownGrace = DefaultShutdownGrace
	}
	if fn.Region == "" {
		fn.Region = fn.Env["AWS_REGION"]
	}
	if fn.Region == "" {
		fn.Region = DefaultRegion
	}
	h := &Host{
		fn:  fn,
		arn: "arn:aws:lambda:" + fn.Region + ":" + AccountID + ":function:" + fn.Name,
		sem: make(chan struct{}, 1),
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, err := h.spawnLocked(); err != nil {
		return nil, err
	}
	return h, nil
}

// FunctionARN is the ARN handed to the runtime as Lambda-Runtime-Invoked-Function-Arn.
func (h *Host) FunctionARN() string { return h.arn }

// ColdStart is the most recent process's init duration: from process start
// to its first GET /runtime/invocation/next. It is zero until a process has
// made that call.
func (h *Host) ColdStart() time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.p != nil {
		if d := h.p.initDuration(); d > 0 {
			h.coldStart = d
		}
	}
	return h.coldStart
}

// PID is the current process's ID, or 0 when no process is running.
func (h *Host) PID() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.p == nil || h.p.hasExited() {
		return 0
	}
	return h.p.pid()
}

// Close kills the process (SIGTERM first, with a short grace, if it
// registered an extension as aws-lambda-go's WithEnableSIGTERM does) and
// stops the API server. Invoke returns ErrClosed afterwards.
func (h *Host) Close() error {
	h.mu.Lock()
	h.closed = true
	p := h.p
	h.p = nil
	h.mu.Unlock()
	if p != nil {
		p.shutdown(h.fn.ShutdownGrace)
	}
	return nil
}

// Invoke runs one invocation and waits for its outcome: a response, a
// function error, a timeout or the process's exit. Concurrent calls queue.
//
// If ctx ends while the function runs, the process is killed (Lambda cannot
// take an event back either) and ctx's error is returned.
func (h *Host) Invoke(ctx context.Context, payload []byte) (Result, error) {
	if len(payload) > MaxPayload {
		return Result{}, fmt.Errorf("lambdahost: request payload of %d bytes exceeds the %d-byte limit", len(payload), MaxPayload)
	}
	select {
	case h.sem <- struct{}{}:
	case <-ctx.Done():
		return Result{}, ctx.Err()
	}
	defer func() { <-h.sem }()

	inv := &invocation{
		id:      newRequestID(),
		payload: payload,
		arn:     h.arn,
		traceID: newTraceID(),
		done:    make(chan outcome, 1),
	}
	d, res, err := h.deliver(ctx, inv, Result{RequestID: inv.id})
	if d == nil {
		return res, err
	}
	defer d.timer.Stop()
	return h.awaitOutcome(ctx, inv, d, res)
}

// delivery is an event a process has taken: the process, when it took it,
// and the timer of its deadline.
type delivery struct {
	p     *process
	start time.Time
	timer *time.Timer
}

// deliver hands the event to a process, starting one if there is none. A
// process that exits before taking the event (say, one that panicked on the
// previous event and is on its way out) is replaced once: the event never
// reached it. When the invocation ends before a runtime takes the event
// (failed init, exit, hung runtime, ctx), deliver returns a nil delivery
// with the final result.
func (h *Host) deliver(ctx context.Context, inv *invocation, res Result) (*delivery, Result, error) {
	for attempt := 0; ; attempt++ {
		p, cold, err := h.process()
		if err != nil {
			return nil, res, err
		}
		if ferr, err := h.awaitInit(ctx, p); err != nil || ferr != nil {
			res.Error = ferr
			if ferr != nil {
				res.Payload = ferr.document()
				res.PID = p.pid()
			}
			return nil, res, err
		}
		if cold {
			res.InitDuration = p.initDuration()
		}
		res.PID = p.pid()

		d := &delivery{p: p, start: time.Now(), timer: time.NewTimer(h.fn.Timeout)}
		inv.deadline = d.start.Add(h.fn.Timeout)
		res.Deadline = inv.deadline
		select {
		case p.invocations <- inv:
			return d, res, nil
		case <-p.exited:
			d.timer.Stop()
			h.discard(p)
			if attempt == 0 && !h.isClosed() {
				continue
			}
			res, err := h.exitResult(res, p)
			return nil, res, err
		case <-d.timer.C:
			// The runtime never asked for the event in time: a hung runtime.
			h.discard(p)
			return nil, h.timeoutResult(res), nil
		case <-ctx.Done():
			d.timer.Stop()
			return nil, res, ctx.Err()
		}
	}
}

// awaitOutcome waits for the runtime's answer to the event it took, or the
// process's exit, the deadline or the end of ctx, whichever comes first.
func (h *Host) awaitOutcome(ctx context.Context, inv *invocation, d *delivery, res Result) (Result, error) {
	select {
	case o := <-inv.done:
		res.Duration = time.Since(d.start)
		return h.outcomeResult(res, o), nil
	case <-d.p.exited:
		res.Duration = time.Since(d.start)
		// The runtime may have answered just before it exited (aws-lambda-go
		// posts a panic's error, then exits).
		o, answered := inv.answered()
		h.discard(d.p)
		if answered {
			return h.outcomeResult(res, o), nil
		}
		return h.exitResult(res, d.p)
	case <-d.timer.C:
		res.Duration = time.Since(d.start)
		h.discard(d.p)
		// An answer that raced the deadline still counts.
		if o, ok := inv.answered(); ok {
			return h.outcomeResult(res, o), nil
		}
		return h.timeoutResult(res), nil
	case <-ctx.Done():
		h.discard(d.p)
		return res, ctx.Err()
	}
}

func (h *Host) outcomeResult(res Result, o outcome) Result {
	if o.err != nil {
		res.Error = o.err
		res.Payload = o.err.document()
		return res
	}
	res.Payload = o.payload
	return res
}

func (h *Host) timeoutResult(res Result) Result {
	res.Error = &FunctionError{
		Type:    ErrorTypeTimeout,
		Message: fmt.Sprintf("%s Task timed out after %.2f seconds", res.RequestID, h.fn.Timeout.Seconds()),
	}
	res.Payload = res.Error.document()
	return res
}

func (h *Host) exitResult(res Result, p *process) (Result, error) {
	if h.isClosed() {
		return res, ErrClosed
	}
	res.Error = p.exitError()
	res.Payload = res.Error.document()
	return res, nil
}

// awaitInit waits until p asks for its first event. A failed init is
// returned as a FunctionError (with Init set); the process is discarded and
// the next Invoke starts over, as Lambda retries init on the next event.
func (h *Host) awaitInit(ctx context.Context, p *process) (*FunctionError, error) {
	select {
	case <-p.ready:
		if !p.hasInitFailed() {
			return nil, nil
		}
	default:
	}
	t := time.NewTimer(h.fn.InitTimeout)
	defer t.Stop()
	select {
	case <-p.ready:
		if !p.hasInitFailed() {
			return nil, nil
		}
	case <-p.initFailed:
	case <-p.exited:
		// Give an init error posted just before exiting precedence.
		if !p.hasInitFailed() {
			h.discard(p)
			if h.isClosed() {
				return nil, ErrClosed
			}
			fe := p.exitError()
			fe.Init = true
			return fe, nil
		}
	case <-t.C:
		h.discard(p)
		return &FunctionError{Type: ErrorTypeTimeout, Init: true,
			Message: fmt.Sprintf("Init phase timed out after %.2f seconds", h.fn.InitTimeout.Seconds())}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	h.discard(p)
	return p.initErr, nil
}

// process returns the live process, starting one if there is none; cold
// reports that its init duration has not been reported yet.
func (h *Host) process() (*process, bool, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, false, ErrClosed
	}
	p := h.p
	if p == nil || p.hasExited() {
		if p != nil {
			go p.shutdown(0)
		}
		var err error
		if p, err = h.spawnLocked(); err != nil {
			return nil, false, err
		}
	}
	cold := h.reported != p
	h.reported = p
	return p, cold, nil
}

// discard kills p and forgets it, so the next Invoke starts a new process.
func (h *Host) discard(p *process) {
	h.mu.Lock()
	if h.p == p {
		h.p = nil
		if d := p.initDuration(); d > 0 {
			h.coldStart = d
		}
	}
	h.mu.Unlock()
	p.shutdown(0)
}

func (h *Host) isClosed() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.closed
}

func (h *Host) spawnLocked() (*process, error) {
	p, err := newProcess(h.fn.Name)
	if err != nil {
		return nil, fmt.Errorf("lambdahost: runtime API listener: %w", err)
	}
	cmd := exec.Command(h.fn.Bootstrap)
	cmd.Dir = filepath.Dir(h.fn.Bootstrap)
	cmd.Env = h.environ(p.addr)
	cmd.Stdout = h.fn.Stdout
	cmd.Stderr = h.fn.Stderr
	cmd.WaitDelay = 2 * time.Second
	if err := p.launch(cmd); err != nil {
		return nil, fmt.Errorf("lambdahost: start %s: %w", h.fn.Bootstrap, err)
	}
	h.p = p
	return p, nil
}

// environ is the process environment: what Lambda defines for a provided
// runtime, then fn.Env, then the variables the host owns.
func (h *Host) environ(apiAddr string) []string {
	fn := h.fn
	env := map[string]string{
		"PATH":                           os.Getenv("PATH"),
		"LANG":                           "en_US.UTF-8",
		"TZ":                             ":UTC",
		"AWS_REGION":                     fn.Region,
		"AWS_DEFAULT_REGION":             fn.Region,
		"AWS_LAMBDA_LOG_GROUP_NAME":      "/aws/lambda/" + fn.Name,
		"AWS_LAMBDA_LOG_STREAM_NAME":     time.Now().UTC().Format("2006/01/02") + "/[$LATEST]" + randomHex(16),
		"AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
		"LAMBDA_RUNTIME_DIR":             filepath.Dir(fn.Bootstrap),
	}
	if fn.LogFormat != "" {
		env["AWS_LAMBDA_LOG_FORMAT"] = fn.LogFormat
		if fn.LogFormat == "JSON" && fn.LogLevel != "" {
			env["AWS_LAMBDA_LOG_LEVEL"] = fn.LogLevel
		}
	}
	for k, v := range fn.Env {
		env[k] = v
	}
	env["AWS_LAMBDA_RUNTIME_API"] = apiAddr
	env["AWS_LAMBDA_FUNCTION_NAME"] = fn.Name
	env["AWS_LAMBDA_FUNCTION_VERSION"] = "$LATEST"
	env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] = strconv.Itoa(fn.MemoryMB)
	env["LAMBDA_TASK_ROOT"] = filepath.Dir(fn.Bootstrap)
	env["_HANDLER"] = filepath.Base(fn.Bootstrap)

	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// newRequestID returns a random UUID (version 4), the shape of Lambda's request IDs.
func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	s := hex.EncodeToString(b[:])
	return s[0:8] + "-" + s[8:12] + "-" + s[12:16] + "-" + s[16:20] + "-" + s[20:32]
}

// newTraceID returns an X-Ray trace header value.
func newTraceID() string {
	return fmt.Sprintf("Root=1-%08x-%s;Parent=%s;Sampled=0", time.Now().Unix(), randomHex(12), randomHex(8))
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
