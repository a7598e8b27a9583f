// Command router is the router function: S3 notifications from the
// arrivals queue in, one release request per route with new files out on
// the FIFO import queue. See internal/imports/router.
package main

import (
	"context"

	"github.com/fno-bridge/s3-fno/internal/imports/filing"
	"github.com/fno-bridge/s3-fno/internal/imports/router"
	"github.com/fno-bridge/s3-fno/internal/shared/startup"
)

func main() { startup.Start("router", build) }

func build(_ context.Context, env startup.Env) (any, error) {
	cfg, err := router.ConfigFromEnv(env.Getenv)
	if err != nil {
		return nil, err
	}
	env.FollowConfig(&cfg.Config)
	cfg.Observers = filing.Observers{Notify: env.Notifier(cfg.Bucket, cfg.Layout), Metrics: env.Metrics,
		Index: &filing.Index{S3: env.S3(), Bucket: cfg.Bucket, Layout: cfg.Layout, Log: env.Log}}
	r, err := router.New(cfg, env.S3(), env.SQS(), env.Log)
	if err != nil {
		return nil, err
	}
	return r.Handle, nil
}
