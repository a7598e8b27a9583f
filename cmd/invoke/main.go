// Command invoke runs one function of template.yaml once, on this machine,
// without Docker: the project's `sam local invoke`.
//
//	go run ./cmd/invoke [-local] -fn EnqueueFunction -event events/enqueue-fifo-batch.json \
//	    [-env-file events/env.local.json] [-env K=V ...] [-param Name=Value ...]
//
// It builds ./functions/<name> for this machine into bin/<name>/bootstrap
// (CGO_ENABLED=0, -tags lambda.norpc), starts it behind the in-repo Lambda
// Runtime API host with the environment the template gives the function
// plus the overrides, invokes it once with the event, and prints the
// response on stdout. The function's own output (its logs) goes to stderr,
// followed by a REPORT line. -fn may be left out for an event file named
// router-*, enqueue-*, poller-* or dequeue-*.
//
// With -local (what `make invoke` passes unless LOCAL=0) it brings its own
// stand-ins: moto_server and the F&O emulator on 127.0.0.1, the stack
// provisioned on moto, the routes' and the event's activities registered,
// what the event names seeded (objects put and the event rewritten to
// match, an export queued, a file in flight for the poller), the function's
// environment pointed at them (-env still wins); after the invoke it prints
// what changed on stderr (-report f also writes it as JSON) and stops them.
// Without -local the endpoints are whatever the environment and the env
// files say, as with sam local invoke. See cmd/invoke/local.go and
// internal/localrun.Sandbox.
//
// Exit status: 0 on a response, 1 on a function error (the error document is
// printed on stdout, as `sam local invoke` does), 2 when the function could
// not be run (usage, template, build, stand-ins).
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := Run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
