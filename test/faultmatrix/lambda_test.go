package faultmatrix_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// invocation is one run of a function, carried in its context.
type invocation struct {
	fn       string
	deadline time.Time
	over     atomic.Bool // the function timed out
	killed   atomic.Bool // the process died (killTransport)
}

type invocationKey struct{}

// dead reports whether the invocation has ended: Lambda has timed it out
// and frozen its sandbox, or its process was killed.
func (inv *invocation) dead() bool {
	return inv.over.Load() || inv.killed.Load() || !time.Now().Before(inv.deadline)
}

// lambdaTransport stands in front of every client the handlers use (S3,
// SQS, F&O). A request made for an invocation that has passed its deadline
// never goes out: on Lambda the function is stopped at its timeout, so work
// a handler tries after it (on a context.WithoutCancel, say) does not
// happen. Requests without an invocation (the test's own) pass.
type lambdaTransport struct{ base http.RoundTripper }

func (l lambdaTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if inv, ok := r.Context().Value(invocationKey{}).(*invocation); ok && inv.dead() {
		if r.Body != nil {
			r.Body.Close()
		}
		return nil, fmt.Errorf("%s timed out: Lambda stopped it before this request", inv.fn)
	}
	return l.base.RoundTrip(r)
}

func frozenAfterDeadline(base http.RoundTripper) *http.Client {
	return &http.Client{Transport: lambdaTransport{base: base}}
}

// killTransport kills the invocation right after the first request that
// kill picks has succeeded: the process dies at that point, and nothing it
// would do next reaches anything (lambdaTransport refuses it). Later
// invocations are new processes and run normally.
type killTransport struct {
	base http.RoundTripper
	kill func(*http.Request) bool
	once sync.Once
	at   atomic.Value // string: the request after which it died
}

func (k *killTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := k.base.RoundTrip(r)
	inv, ok := r.Context().Value(invocationKey{}).(*invocation)
	if err != nil || !ok || resp.StatusCode >= 300 || k.kill == nil || !k.kill(r) {
		return resp, err
	}
	k.once.Do(func() {
		inv.killed.Store(true)
		k.at.Store(r.Method + " " + r.URL.Path)
	})
	return resp, err
}

// lambdaFn runs a handler in-process as Lambda runs a function: the
// payload is decoded into the handler's input, the context carries the
// function's deadline, a panic is a function error (the runtime crashed),
// and at the deadline the invocation is a timeout whatever the handler is
// still doing. It is a localrun.Invoker.
type lambdaFn[In, Out any] struct {
	name    string
	timeout time.Duration
	handler func(context.Context, In) (Out, error)

	mu                                     sync.Mutex
	invocations, errors, crashes, timeouts int
}

func (f *lambdaFn[In, Out]) count(fn func()) {
	f.mu.Lock()
	fn()
	f.mu.Unlock()
}

// stats returns invocations, function errors, crashes and timeouts.
func (f *lambdaFn[In, Out]) stats() (invocations, errors, crashes, timeouts int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.invocations, f.errors, f.crashes, f.timeouts
}

func (f *lambdaFn[In, Out]) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	f.count(func() { f.invocations++ })
	var in In
	if err := json.Unmarshal(payload, &in); err != nil {
		return nil, fmt.Errorf("%s: decode the event: %w", f.name, err)
	}
	inv := &invocation{fn: f.name, deadline: time.Now().Add(f.timeout)}
	ictx, cancel := context.WithDeadline(context.WithValue(ctx, invocationKey{}, inv), inv.deadline)
	defer cancel()
	type result struct {
		out     []byte
		err     error
		crashed bool
	}
	done := make(chan result, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				done <- result{err: fmt.Errorf("%s: Runtime.ExitError: %v", f.name, p), crashed: true}
			}
		}()
		out, err := f.handler(ictx, in)
		if err != nil {
			done <- result{err: fmt.Errorf("%s: %w", f.name, err)}
			return
		}
		b, err := json.Marshal(out)
		done <- result{out: b, err: err}
	}()
	timer := time.NewTimer(f.timeout)
	defer timer.Stop()
	select {
	case r := <-done:
		if inv.killed.Load() {
			r.out, r.err, r.crashed = nil, fmt.Errorf("%s: Runtime.ExitError: killed", f.name), true
		}
		f.count(func() {
			if r.err != nil {
				f.errors++
			}
			if r.crashed {
				f.crashes++
			}
		})
		return r.out, r.err
	case <-timer.C:
		inv.over.Store(true)
		f.count(func() { f.errors++; f.timeouts++ })
		return nil, fmt.Errorf("%s: Task timed out after %s", f.name, f.timeout)
	}
}
