package lambdahost_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fno-bridge/s3-fno/internal/local/lambdahost"
)

// bootstrap is the echofn test function, built once by TestMain.
var bootstrap string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "lambdahost-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bootstrap = filepath.Join(dir, "echofn", "bootstrap")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	err = lambdahost.Build(ctx, ".", "./testdata/echofn", bootstrap)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "building the test bootstrap:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// reply mirrors testdata/echofn's Reply.
type reply struct {
	RequestID   string            `json:"requestId"`
	FunctionARN string            `json:"functionArn"`
	DeadlineMs  int64             `json:"deadlineMs"`
	TraceID     string            `json:"traceId"`
	PID         int               `json:"pid"`
	Env         map[string]string `json:"env"`
	Event       json.RawMessage   `json:"event"`
	Cwd         string            `json:"cwd"`
}

func startHost(t *testing.T, fn lambdahost.Function) *lambdahost.Host {
	t.Helper()
	if fn.Bootstrap == "" {
		fn.Bootstrap = bootstrap
	}
	if fn.Stderr == nil {
		fn.Stderr = testWriter{t}
	}
	h, err := lambdahost.Start(context.Background(), fn)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// testWriter sends the function's log output to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func invoke(t *testing.T, h *lambdahost.Host, payload string) lambdahost.Result {
	t.Helper()
	res, err := h.Invoke(context.Background(), []byte(payload))
	if err != nil {
		t.Fatalf("Invoke(%s): %v", payload, err)
	}
	return res
}

func invokeOK(t *testing.T, h *lambdahost.Host, payload string) (lambdahost.Result, reply) {
	t.Helper()
	res := invoke(t, h, payload)
	if res.Error != nil {
		t.Fatalf("Invoke(%s): function error %v", payload, res.Error)
	}
	var r reply
	if err := json.Unmarshal(res.Payload, &r); err != nil {
		t.Fatalf("reply %s: %v", res.Payload, err)
	}
	return res, r
}

func alive(pid int) bool { return syscall.Kill(pid, 0) == nil }

func TestInvoke_PayloadAndContext(t *testing.T) {
	t.Parallel()
	h := startHost(t, lambdahost.Function{
		Name:      "EchoFunction",
		Timeout:   7 * time.Second,
		MemoryMB:  512,
		Region:    "eu-west-1",
		LogFormat: "JSON",
		LogLevel:  "DEBUG",
		Env: map[string]string{
			"BUCKET":                 "my-bucket",
			"AWS_LAMBDA_RUNTIME_API": "127.0.0.1:1", // not the caller's to set
			"_HANDLER":               "other",
		},
	})
	payload := `{"mode":"echo","env":["BUCKET","AWS_LAMBDA_FUNCTION_NAME","AWS_LAMBDA_FUNCTION_VERSION","AWS_LAMBDA_FUNCTION_MEMORY_SIZE","LAMBDA_TASK_ROOT","_HANDLER","AWS_REGION","AWS_LAMBDA_LOG_FORMAT","AWS_LAMBDA_LOG_LEVEL","AWS_LAMBDA_RUNTIME_API","TZ"],"unicode":"f\u00fcr"}`
	res, r := invokeOK(t, h, payload)

	if string(r.Event) != payload {
		t.Errorf("event round trip:\n got %s\nwant %s", r.Event, payload)
	}
	if res.Err() != nil {
		t.Errorf("Err() = %v for a successful invocation", res.Err())
	}
	if res.RequestID == "" || r.RequestID != res.RequestID {
		t.Errorf("handler saw request ID %q, host reported %q", r.RequestID, res.RequestID)
	}
	if r.DeadlineMs != res.Deadline.UnixMilli() {
		t.Errorf("handler's ctx deadline %d, host's deadline %d", r.DeadlineMs, res.Deadline.UnixMilli())
	}
	if want := "arn:aws:lambda:eu-west-1:123456789012:function:EchoFunction"; r.FunctionARN != want || h.FunctionARN() != want {
		t.Errorf("function ARN: handler %q, host %q, want %q", r.FunctionARN, h.FunctionARN(), want)
	}
	if !strings.HasPrefix(r.TraceID, "Root=1-") {
		t.Errorf("trace ID %q", r.TraceID)
	}
	taskRoot := filepath.Dir(bootstrap)
	want := map[string]string{
		"BUCKET":                          "my-bucket",
		"AWS_LAMBDA_FUNCTION_NAME":        "EchoFunction",
		"AWS_LAMBDA_FUNCTION_VERSION":     "$LATEST",
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
		"LAMBDA_TASK_ROOT":                taskRoot,
		"_HANDLER":                        "bootstrap",
		"AWS_REGION":                      "eu-west-1",
		"AWS_LAMBDA_LOG_FORMAT":           "JSON",
		"AWS_LAMBDA_LOG_LEVEL":            "DEBUG",
		"TZ":                              ":UTC",
	}
	for k, v := range want {
		if r.Env[k] != v {
			t.Errorf("env %s = %q, want %q", k, r.Env[k], v)
		}
	}
	if r.Env["AWS_LAMBDA_RUNTIME_API"] == "127.0.0.1:1" {
		t.Error("the caller's AWS_LAMBDA_RUNTIME_API overrode the host's")
	}
	if r.Cwd != taskRoot {
		t.Errorf("working directory %q, want the task root %q", r.Cwd, taskRoot)
	}
	if res.InitDuration <= 0 {
		t.Error("first invocation reported no init duration")
	}
	if h.ColdStart() <= 0 {
		t.Error("ColdStart() is zero after the first invocation")
	}
}

func TestInvoke_WarmReuse(t *testing.T) {
	t.Parallel()
	h := startHost(t, lambdahost.Function{})
	res1, r1 := invokeOK(t, h, `{"n":1}`)
	res2, r2 := invokeOK(t, h, `{"n":2}`)
	if r1.PID != r2.PID || res1.PID != res2.PID || r1.PID != res1.PID {
		t.Errorf("PIDs: handler %d then %d, host %d then %d; want one warm process", r1.PID, r2.PID, res1.PID, res2.PID)
	}
	if res2.InitDuration != 0 {
		t.Errorf("warm invocation reported init duration %v", res2.InitDuration)
	}
	if r1.RequestID == r2.RequestID {
		t.Error("two invocations shared a request ID")
	}
	if h.PID() != r1.PID {
		t.Errorf("PID() = %d, want %d", h.PID(), r1.PID)
	}
}

func TestInvoke_FunctionError(t *testing.T) {
	t.Parallel()
	h := startHost(t, lambdahost.Function{})
	_, before := invokeOK(t, h, `{}`)

	res := invoke(t, h, `{"mode":"error","message":"route \"x\" unknown"}`)
	if res.Error == nil {
		t.Fatalf("no function error; payload %s", res.Payload)
	}
	if res.Error.Type != "validationError" || res.Error.Message != `route "x" unknown` {
		t.Errorf("error = %+v", res.Error)
	}
	var fe *lambdahost.FunctionError
	if !errors.As(res.Err(), &fe) || fe != res.Error {
		t.Errorf("Err() = %v, want the FunctionError", res.Err())
	}
	if errors.Is(res.Error, lambdahost.ErrTimeout) || errors.Is(res.Error, lambdahost.ErrInit) {
		t.Error("a handler error matched ErrTimeout or ErrInit")
	}
	var doc map[string]any
	if err := json.Unmarshal(res.Payload, &doc); err != nil || doc["errorType"] != "validationError" {
		t.Errorf("payload is not the error document: %s", res.Payload)
	}

	_, after := invokeOK(t, h, `{}`)
	if after.PID != before.PID {
		t.Error("a handled error replaced the process; Lambda keeps it warm")
	}
}

func TestInvoke_PanicRestartsProcess(t *testing.T) {
	t.Parallel()
	h := startHost(t, lambdahost.Function{})
	_, before := invokeOK(t, h, `{}`)

	res := invoke(t, h, `{"mode":"panic","message":"nil map"}`)
	if res.Error == nil || res.Error.Message != "nil map" {
		t.Fatalf("error = %+v", res.Error)
	}
	res2, after := invokeOK(t, h, `{}`)
	if after.PID == before.PID {
		t.Error("the process that panicked served the next invocation")
	}
	if res2.InitDuration <= 0 {
		t.Error("the replacement process was not reported as a cold start")
	}
}

func TestInvoke_TimeoutKillsAndRestarts(t *testing.T) {
	t.Parallel()
	h := startHost(t, lambdahost.Function{Timeout: time.Second})
	_, before := invokeOK(t, h, `{}`)

	res := invoke(t, h, `{"mode":"sleep","sleep":"1h"}`)
	if !errors.Is(res.Error, lambdahost.ErrTimeout) {
		t.Fatalf("error = %v, want ErrTimeout", res.Error)
	}
	if res.Error.Type != "Sandbox.Timedout" || !strings.Contains(res.Error.Message, "Task timed out after 1.00 seconds") {
		t.Errorf("error = %+v", res.Error)
	}
	if alive(before.PID) {
		t.Errorf("process %d still alive after the timeout", before.PID)
	}
	res2, after := invokeOK(t, h, `{}`)
	if after.PID == before.PID {
		t.Error("no new process after the timeout")
	}
	if res2.InitDuration <= 0 {
		t.Error("the new process was not reported as a cold start")
	}
}

func TestInvoke_ExitMidInvocation(t *testing.T) {
	t.Parallel()
	h := startHost(t, lambdahost.Function{})
	res := invoke(t, h, `{"mode":"exit"}`)
	if res.Error == nil || res.Error.Type != lambdahost.ErrorTypeExit || !strings.Contains(res.Error.Message, "exit status 7") {
		t.Fatalf("error = %+v", res.Error)
	}
	if errors.Is(res.Error, lambdahost.ErrInit) {
		t.Error("an exit during an invocation was reported as an init failure")
	}
	invokeOK(t, h, `{}`)
}

func TestInvoke_InitError(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, mode, wantType, wantMsg string
	}{
		{"posted", "error", "Runtime.ConfigError", "ROUTES is not valid JSON"},
		{"exited", "exit", lambdahost.ErrorTypeExit, "exit status 3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := startHost(t, lambdahost.Function{Env: map[string]string{"ECHOFN_INIT": tt.mode}})
			for i := range 2 { // init is retried on the next invocation, as on Lambda
				res := invoke(t, h, `{}`)
				if !errors.Is(res.Error, lambdahost.ErrInit) {
					t.Fatalf("invoke %d: error = %v, want ErrInit", i, res.Error)
				}
				if res.Error.Type != tt.wantType || !strings.Contains(res.Error.Message, tt.wantMsg) {
					t.Errorf("invoke %d: error = %+v", i, res.Error)
				}
			}
		})
	}
}

func TestInvoke_ResponseTooLarge(t *testing.T) {
	t.Parallel()
	h := startHost(t, lambdahost.Function{})
	res := invoke(t, h, fmt.Sprintf(`{"mode":"big","size":%d}`, lambdahost.MaxPayload+1))
	if res.Error == nil || res.Error.Type != lambdahost.ErrorTypeResponseTooLarge {
		t.Fatalf("error = %+v", res.Error)
	}
	res = invoke(t, h, fmt.Sprintf(`{"mode":"big","size":%d}`, lambdahost.MaxPayload))
	if res.Error != nil || len(res.Payload) != lambdahost.MaxPayload {
		t.Fatalf("6 MB response: error %v, %d bytes", res.Error, len(res.Payload))
	}
}

func TestInvoke_RequestTooLarge(t *testing.T) {
	t.Parallel()
	h := startHost(t, lambdahost.Function{})
	if _, err := h.Invoke(context.Background(), make([]byte, lambdahost.MaxPayload+1)); err == nil {
		t.Fatal("a request over 6 MB was accepted")
	}
}

func TestInvoke_StreamErrorInTrailers(t *testing.T) {
	t.Parallel()
	h := startHost(t, lambdahost.Function{})
	res := invoke(t, h, `{"mode":"stream-error"}`)
	if res.Error == nil || !strings.Contains(res.Error.Message, "stream broke") {
		t.Fatalf("error = %+v, payload %s", res.Error, res.Payload)
	}
}

func TestInvoke_Serialized(t *testing.T) {
	t.Parallel()
	h := startHost(t, lambdahost.Function{})
	const n = 6
	var wg sync.WaitGroup
	replies := make([]reply, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			res, err := h.Invoke(context.Background(), fmt.Appendf(nil, `{"i":%d}`, i))
			if err == nil && res.Error != nil {
				err = res.Error
			}
			if err == nil {
				err = json.Unmarshal(res.Payload, &replies[i])
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("invoke %d: %v", i, errs[i])
		}
		if want := fmt.Sprintf(`{"i":%d}`, i); string(replies[i].Event) != want {
			t.Errorf("invoke %d got the reply to %s", i, replies[i].Event)
		}
		if replies[i].PID != replies[0].PID {
			t.Errorf("invoke %d ran in process %d, invoke 0 in %d", i, replies[i].PID, replies[0].PID)
		}
	}
}

func TestInvoke_ContextCancelled(t *testing.T) {
	t.Parallel()
	h := startHost(t, lambdahost.Function{Timeout: time.Minute})
	_, before := invokeOK(t, h, `{}`)
	started := filepath.Join(t.TempDir(), "started")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { // cancel once the handler is running
		for {
			if _, err := os.Stat(started); err == nil {
				cancel()
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	payload := fmt.Sprintf(`{"mode":"sleep","sleep":"1h","started":%q}`, started)
	if _, err := h.Invoke(ctx, []byte(payload)); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if alive(before.PID) {
		t.Error("the process kept running after its invocation was abandoned")
	}
	invokeOK(t, h, `{}`)
}

func TestClose(t *testing.T) {
	t.Parallel()
	sigterm := filepath.Join(t.TempDir(), "sigterm")
	h := startHost(t, lambdahost.Function{
		Env:           map[string]string{"ECHOFN_SIGTERM_FILE": sigterm},
		ShutdownGrace: time.Minute, // the handler exits as soon as it has written the file
	})
	_, r := invokeOK(t, h, `{}`)
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if alive(r.PID) {
		t.Errorf("process %d alive after Close", r.PID)
	}
	if _, err := os.Stat(sigterm); err != nil {
		t.Errorf("the function's SIGTERM handler did not run: %v", err)
	}
	if _, err := h.Invoke(context.Background(), []byte(`{}`)); !errors.Is(err, lambdahost.ErrClosed) {
		t.Errorf("Invoke after Close: %v, want ErrClosed", err)
	}
}

func TestStart_BadBootstrap(t *testing.T) {
	t.Parallel()
	for name, path := range map[string]string{
		"missing":   filepath.Join(t.TempDir(), "nope"),
		"directory": t.TempDir(),
		"empty":     "",
	} {
		if _, err := lambdahost.Start(context.Background(), lambdahost.Function{Bootstrap: path}); err == nil {
			t.Errorf("%s: Start succeeded", name)
		}
	}
}
