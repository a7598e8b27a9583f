// Command poller is the scheduled poller function: it follows every
// enqueued file to its final status in F&O and files it under processed/ or
// failed/. See internal/imports/poller.
package main

import (
	"context"

	"github.com/fno-bridge/s3-fno/internal/imports/filing"
	"github.com/fno-bridge/s3-fno/internal/imports/pause"
	"github.com/fno-bridge/s3-fno/internal/imports/poller"
	"github.com/fno-bridge/s3-fno/internal/shared/startup"
)

func main() { startup.Start("poller", build) }

func build(_ context.Context, env startup.Env) (any, error) {
	cfg, err := poller.ConfigFromEnv(env.Getenv)
	if err != nil {
		return nil, err
	}
	env.FollowConfig(&cfg.Config.Config)
	cfg.Observers = filing.Observers{Notify: env.Notifier(cfg.Bucket, cfg.Layout), Metrics: env.Metrics,
		Index: &filing.Index{S3: env.S3(), Bucket: cfg.Bucket, Layout: cfg.Layout, Log: env.Log},
		Pause: pause.OnFailureOf(cfg.Routes, env.S3(), cfg.Bucket, cfg.Layout, env.Log)}
	cfg.DLQ = env.SQS()
	// One budget per execution environment, shared by every invocation:
	// the client waits on it before each request, retries included.
	budget := poller.NewBudget(cfg.BudgetPerMinute)
	fno, err := env.FnO(budget)
	if err != nil {
		return nil, err
	}
	p, err := poller.New(cfg, env.S3(), fno, budget, env.SQS(), env.Log)
	if err != nil {
		return nil, err
	}
	return p.Handle, nil
}
