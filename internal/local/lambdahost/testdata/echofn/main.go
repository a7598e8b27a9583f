// Command echofn is a test bootstrap for the lambdahost and cmd/invoke tests:
// a real aws-lambda-go function whose behaviour the event selects.
//
// Init-phase behaviour comes from ECHOFN_INIT: "error" posts to
// /runtime/init/error and exits 1; "exit" exits 3 without a word.
// ECHOFN_SIGTERM_FILE, when set, enables SIGTERM delivery (through the
// Extensions API) and names a file the SIGTERM handler writes before it
// exits.
//
// Event {"mode": ...}:
//
//	"echo" (default)  reply with the event, the Lambda context and the env vars named in "env"
//	"error"           return a *validationError with "message"
//	"panic"           panic with "message" (aws-lambda-go reports it, then exits)
//	"sleep"           sleep "sleep" (a Go duration), ignoring the context; first
//	                  create the file "started" names, if any
//	"exit"            os.Exit(7) mid-invocation
//	"big"             reply with "size" bytes
//	"stream-error"    reply with a stream that fails part way
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
)

type event struct {
	Mode    string   `json:"mode"`
	Message string   `json:"message"`
	Sleep   string   `json:"sleep"`
	Size    int      `json:"size"`
	Env     []string `json:"env"`
	// Started, for "sleep", names a file written once the handler runs.
	Started string `json:"started"`
}

// Reply is what the echo mode returns.
type Reply struct {
	RequestID   string            `json:"requestId"`
	FunctionARN string            `json:"functionArn"`
	DeadlineMs  int64             `json:"deadlineMs"`
	TraceID     string            `json:"traceId"`
	PID         int               `json:"pid"`
	Env         map[string]string `json:"env"`
	Event       json.RawMessage   `json:"event"`
	Cwd         string            `json:"cwd"`
}

type validationError struct{ msg string }

func (e *validationError) Error() string { return e.msg }

type failingReader struct{ sent bool }

func (r *failingReader) Read(p []byte) (int, error) {
	if !r.sent {
		r.sent = true
		return copy(p, "partial"), nil
	}
	return 0, errors.New("stream broke")
}

func handle(ctx context.Context, raw json.RawMessage) (any, error) {
	var ev event
	if err := json.Unmarshal(raw, &ev); err != nil {
		return nil, fmt.Errorf("decode event: %w", err)
	}
	switch ev.Mode {
	case "", "echo":
		lc, _ := lambdacontext.FromContext(ctx)
		dl, _ := ctx.Deadline()
		cwd, _ := os.Getwd()
		r := Reply{
			RequestID:   lc.AwsRequestID,
			FunctionARN: lc.InvokedFunctionArn,
			DeadlineMs:  dl.UnixMilli(),
			TraceID:     os.Getenv("_X_AMZN_TRACE_ID"),
			PID:         os.Getpid(),
			Env:         map[string]string{},
			Event:       raw,
			Cwd:         cwd,
		}
		for _, k := range ev.Env {
			if v, ok := os.LookupEnv(k); ok {
				r.Env[k] = v
			}
		}
		return r, nil
	case "error":
		return nil, &validationError{msg: ev.Message}
	case "panic":
		panic(ev.Message)
	case "sleep":
		d, err := time.ParseDuration(ev.Sleep)
		if err != nil {
			return nil, err
		}
		if ev.Started != "" {
			if err := os.WriteFile(ev.Started, nil, 0o644); err != nil {
				return nil, err
			}
		}
		time.Sleep(d)
		return map[string]string{"slept": ev.Sleep}, nil
	case "exit":
		os.Exit(7)
	case "big":
		return io.Reader(strings.NewReader(strings.Repeat("x", ev.Size))), nil
	case "stream-error":
		return &failingReader{}, nil
	}
	return nil, fmt.Errorf("unknown mode %q", ev.Mode)
}

func main() {
	switch os.Getenv("ECHOFN_INIT") {
	case "error":
		body := `{"errorType":"Runtime.ConfigError","errorMessage":"ROUTES is not valid JSON"}`
		url := "http://" + os.Getenv("AWS_LAMBDA_RUNTIME_API") + "/2018-06-01/runtime/init/error"
		req, _ := http.NewRequest(http.MethodPost, url, bytes.NewBufferString(body))
		req.Header.Set("Lambda-Runtime-Function-Error-Type", "Runtime.ConfigError")
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
		os.Exit(1)
	case "exit":
		fmt.Fprintln(os.Stderr, "echofn: giving up before init")
		os.Exit(3)
	}
	if f := os.Getenv("ECHOFN_SIGTERM_FILE"); f != "" {
		lambda.StartWithOptions(handle, lambda.WithEnableSIGTERM(func() {
			_ = os.WriteFile(f, []byte("SIGTERM"), 0o644)
			os.Exit(0)
		}))
		return
	}
	lambda.Start(handle)
}
