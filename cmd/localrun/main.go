// Command localrun runs the product on local stand-ins, without Docker:
//
//	go run ./cmd/localrun demo    # files in, imports tracked, exports out, a summary
//
// It starts moto_server and the F&O emulator, builds the functions, runs
// them behind Runtime API hosts and plays Lambda's event source mappings
// and EventBridge Scheduler. Its summary says where each file and export
// ended, what people were told (the notification topic's messages) and
// the metrics the functions wrote. See internal/local/localrun.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/fno-bridge/s3-fno/internal/local/localrun"
)

func main() {
	dir := flag.String("dir", ".local/demo", "scratch folder for built functions and their logs")
	timeout := flag.Duration("timeout", 3*time.Minute, "how long the files may take to settle")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: localrun [flags] demo")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.Arg(0) != "demo" {
		flag.Usage()
		os.Exit(2)
	}
	// Flags may follow the command too (localrun demo -dir d).
	if err := flag.CommandLine.Parse(flag.Args()[1:]); err != nil || flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	repo, err := os.Getwd()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	d := &localrun.Demo{Repo: repo, Dir: filepath.Clean(*dir), Timeout: *timeout, Out: os.Stdout}
	if err := d.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}
