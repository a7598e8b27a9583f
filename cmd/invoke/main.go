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
// With -local (what `make invoke` passes unless LOCAL=0) it starts its own
// stand-ins, moto_server and the F&O emulator on 127.0.0.1, provisions the
// stack, seeds what the event names and points the function at them (-env
// still wins); afterwards it prints on stderr what changed, what the
// function published to the stack's notification topic and the metrics of
// its EMF lines (-report f also writes it as JSON), and stops them
// (internal/local/localrun.Sandbox).
// Without -local the endpoints are whatever the environment and the env
// files say, as with sam local invoke.
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
