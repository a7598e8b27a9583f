// Command d365emu runs the Dynamics 365 F&O + Entra ID emulator
// (pkg/d365/d365test) on 127.0.0.1 for local runs and demos.
//
//	go run ./cmd/d365emu -addr 127.0.0.1:0 \
//	    -activity 6c4e8f53-2d0a-4b7e-9f13-8a5c2b7d9e01,file,inorder \
//	    -activity a1f0e9d8-7c6b-4a59-8e4d-3c2b1a0f9e03,package \
//	    -ca-out .local/d365emu-ca.pem -tick 5s
//
// It prints the F&O base URL, the Entra authority, tenant, client ID and
// secret as KEY=value lines, writes the CA certificate to -ca-out, runs a
// batch tick every -tick, and stops on SIGINT or SIGTERM. -enqueue-answer
// makes enqueue answer in another shape than F&O's (a sign-in page, plain
// text, ...), to see how a client takes it. -enhanced-parallel-package-import
// lets package imports of different data projects run at once;
// -on-premises serves an on-premises environment (AD FS sign-in, the
// package API under /namespaces/AXSF) and prints its settings.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	cfg, err := parseFlags(os.Args[1:], os.Stderr)
	if err != nil {
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, os.Stdout, nil); err != nil {
		fmt.Fprintln(os.Stderr, "d365emu:", err)
		os.Exit(1)
	}
}
