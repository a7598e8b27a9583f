// Command invoke runs one function of template.yaml once, on this machine,
// without Docker: the project's `sam local invoke`.
//
//	go run ./cmd/invoke -fn EnqueueFunction -event events/enqueue-fifo-batch.json \
//	    [-env-file events/env.local.json] [-env K=V ...] [-param Name=Value ...]
//
// It builds ./functions/<name> for this machine into bin/<name>/bootstrap
// (CGO_ENABLED=0, -tags lambda.norpc), starts it behind the in-repo Lambda
// Runtime API host with the environment the template gives the function
// plus the overrides, invokes it once with the event, and prints the
// response on stdout. The function's own output (its logs) goes to stderr,
// followed by a REPORT line.
//
// Exit status: 0 on a response, 1 on a function error (the error document is
// printed on stdout, as `sam local invoke` does), 2 when the function could
// not be run (usage, template, build).
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
