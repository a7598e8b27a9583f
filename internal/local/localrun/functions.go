package localrun

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/fno-bridge/s3-fno/internal/local/lambdahost"
)

// FunctionSpec is one function of the template to build and run.
type FunctionSpec struct {
	LogicalID string // e.g. EnqueueFunction
	Package   string // e.g. ./functions/enqueue
	Timeout   time.Duration
	Env       map[string]string
}

// Functions are the built functions, each in its own execution
// environment behind a Runtime API host.
type Functions struct {
	hosts map[string]*lambdahost.Host
	logs  []io.Closer
}

// StartFunctions builds each function's bootstrap under dir/bin and starts
// it behind a Runtime API host; each one's output goes to dir/logs/<id>.log.
func StartFunctions(ctx context.Context, repo, dir string, specs []FunctionSpec) (*Functions, error) {
	f := &Functions{hosts: map[string]*lambdahost.Host{}}
	if err := os.MkdirAll(filepath.Join(dir, "logs"), 0o755); err != nil {
		return nil, err
	}
	for _, s := range specs {
		bin := filepath.Join(dir, "bin", s.LogicalID, "bootstrap")
		if err := lambdahost.Build(ctx, repo, s.Package, bin); err != nil {
			f.Close()
			return nil, err
		}
		log, err := os.Create(filepath.Join(dir, "logs", s.LogicalID+".log"))
		if err != nil {
			f.Close()
			return nil, err
		}
		f.logs = append(f.logs, log)
		h, err := lambdahost.Start(ctx, lambdahost.Function{
			Name: s.LogicalID, Bootstrap: bin, Env: s.Env, Timeout: s.Timeout,
			MemoryMB: 512, LogFormat: "JSON", LogLevel: "INFO", Stdout: log, Stderr: log,
		})
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("start %s: %w", s.LogicalID, err)
		}
		f.hosts[s.LogicalID] = h
	}
	return f, nil
}

// Invoker returns the function as an Invoker; a function error is an error.
func (f *Functions) Invoker(logicalID string) Invoker {
	h := f.hosts[logicalID]
	return InvokerFunc(func(ctx context.Context, payload []byte) ([]byte, error) {
		res, err := h.Invoke(ctx, payload)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", logicalID, err)
		}
		if res.Error != nil {
			return res.Payload, fmt.Errorf("%s: %w", logicalID, res.Error)
		}
		return res.Payload, nil
	})
}

// PIDs are the function processes running now.
func (f *Functions) PIDs() []int {
	var out []int
	for _, h := range f.hosts {
		if pid := h.PID(); pid != 0 {
			out = append(out, pid)
		}
	}
	return out
}

// Close stops every function process and closes the logs.
func (f *Functions) Close() {
	for _, h := range f.hosts {
		h.Close()
	}
	for _, l := range f.logs {
		l.Close()
	}
}
