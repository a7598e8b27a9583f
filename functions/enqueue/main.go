// Command enqueue is the enqueue function: FIFO import messages in; a
// release request releases its route's files in drop order, a file is
// streamed from S3 to F&O's enqueue endpoint. See internal/imports/enqueue.
package main

import (
	"context"

	"github.com/fno-bridge/s3-fno/internal/imports/enqueue"
	"github.com/fno-bridge/s3-fno/internal/imports/filing"
	"github.com/fno-bridge/s3-fno/internal/imports/pause"
	"github.com/fno-bridge/s3-fno/internal/shared/startup"
)

func main() { startup.Start("enqueue", build) }

func build(_ context.Context, env startup.Env) (any, error) {
	cfg, err := enqueue.ConfigFromEnv(env.Getenv)
	if err != nil {
		return nil, err
	}
	env.FollowConfig(&cfg.Config.Config)
	cfg.Observers = filing.Observers{Notify: env.Notifier(cfg.Bucket, cfg.Layout), Metrics: env.Metrics,
		Index: &filing.Index{S3: env.S3(), Bucket: cfg.Bucket, Layout: cfg.Layout, Log: env.Log},
		Pause: pause.OnFailureOf(cfg.Routes, env.S3(), cfg.Bucket, cfg.Layout, env.Log)}
	fno, err := env.FnO(nil)
	if err != nil {
		return nil, err
	}
	h, err := enqueue.New(cfg, env.S3(), fno, env.SQS(), env.Log)
	if err != nil {
		return nil, err
	}
	return h.Handle, nil
}
