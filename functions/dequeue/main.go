// Command dequeue is the dequeue function: EventBridge Scheduler invokes it
// once per export job with the job as constant JSON input; it lands the
// job's F&O exports in S3 and acknowledges them. See
// internal/exports/dequeue.
package main

import (
	"context"

	"github.com/fno-bridge/s3-fno/internal/exports/dequeue"
	"github.com/fno-bridge/s3-fno/internal/shared/layout"
	"github.com/fno-bridge/s3-fno/internal/shared/startup"
)

func main() { startup.Start("dequeue", build) }

func build(_ context.Context, env startup.Env) (any, error) {
	h, err := newHandler(env)
	if err != nil {
		return nil, err
	}
	// Keep the heap in use within the landing's memory bound between
	// uploads; GOMEMLIMIT overrides.
	limit, fromEnv := dequeue.ApplyMemoryLimit(h.Config(), env.Getenv)
	source := "part size × concurrency + headroom"
	if fromEnv {
		source = "GOMEMLIMIT"
	}
	env.Log.Info("dequeue: soft memory limit", "bytes", limit, "MiB", limit>>20, "source", source)
	if mib, over := dequeue.OverFunctionMemory(limit, env.Getenv); over && !fromEnv {
		env.Log.Error("dequeue: the landing's memory bound is above the function's memory; a large export will run it out of memory: "+
			"lower UPLOAD_PART_MIB or UPLOAD_CONCURRENCY, or raise MemorySize", "limitMiB", limit>>20, "functionMiB", mib)
	}
	return h.Handle, nil
}

// newHandler builds the handler from the environment. It makes no network
// calls: the F&O secret is fetched on the first token request.
func newHandler(env startup.Env) (*dequeue.Handler, error) {
	cfg, err := dequeue.ConfigFromEnv(env.Getenv)
	if err != nil {
		return nil, err
	}
	fno, err := env.FnO(nil)
	if err != nil {
		return nil, err
	}
	cfg.Logger, cfg.Metrics = env.Log, env.Metrics
	cfg.Notify = env.Notifier(cfg.Bucket, layout.Layout{State: cfg.StatePrefix})
	return dequeue.New(cfg, fno, env.S3())
}
