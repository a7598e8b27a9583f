// Command localrun runs the product on local stand-ins, without Docker:
//
//	go run ./cmd/localrun demo    # files in, operations, exports out, a summary
//	go run ./cmd/localrun up      # a long-lived local stack until Ctrl-C
//
// It starts moto_server and the F&O emulator (or, for up, uses a real F&O
// environment given by -fno-* flags or FNO_* variables), builds the
// functions, runs them behind Runtime API hosts and plays Lambda's event
// source mappings and EventBridge Scheduler. See internal/local/localrun.
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
	if len(os.Args) < 2 || (os.Args[1] != "demo" && os.Args[1] != "up") {
		fmt.Fprintln(os.Stderr, "usage: localrun demo [flags]   the whole pipeline once, with a summary (make demo)\n"+
			"       localrun up [flags]     a long-lived local stack until Ctrl-C (make up)\n"+
			"localrun COMMAND -h lists its flags")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	repo, err := os.Getwd()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	run := demo
	if os.Args[1] == "up" {
		run = up
	}
	if err := run(ctx, repo, os.Args[2:]); err != nil {
		fmt.Fprintf(os.Stderr, "localrun %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

func demo(ctx context.Context, repo string, args []string) error {
	fs := flag.NewFlagSet("localrun demo", flag.ExitOnError)
	dir := fs.String("dir", ".local/demo", "scratch folder for built functions, their logs and the env file")
	timeout := fs.Duration("timeout", 3*time.Minute, "how long the files may take to settle")
	fs.Parse(args)
	d := &localrun.Demo{Repo: repo, Dir: filepath.Clean(*dir), Timeout: *timeout, Out: os.Stdout}
	return d.Run(ctx)
}

func up(ctx context.Context, repo string, args []string) error {
	fs := flag.NewFlagSet("localrun up", flag.ExitOnError)
	u := &localrun.Up{Repo: repo, Out: os.Stdout}
	var fno localrun.FnOSettings
	var config string
	fs.StringVar(&u.Dir, "dir", ".local/up", "folder for built functions, their logs, env.json and config.json")
	fs.StringVar(&u.Name, "name", "local", "the stack's name (resource names, notification subjects)")
	fs.StringVar(&config, "config", "", "the starting configuration `FILE` (default: a sample on the emulator, an empty one on a real F&O)")
	fs.DurationVar(&u.PollEvery, "poll-every", 5*time.Second, "the poller schedule's period")
	fs.DurationVar(&u.ScheduleEvery, "schedule-every", 2*time.Second, "how often the export schedules are looked at")
	fs.DurationVar(&u.ConfigRefresh, "config-refresh", 5*time.Second, "the functions' CONFIG_REFRESH (30s on AWS)")
	fs.StringVar(&fno.BaseURL, "fno-base-url", os.Getenv("FNO_BASE_URL"), "a real F&O environment's URL (default $FNO_BASE_URL); empty: the emulator")
	fs.StringVar(&fno.TenantID, "fno-tenant-id", os.Getenv("FNO_TENANT_ID"), "its Entra ID tenant (default $FNO_TENANT_ID)")
	fs.StringVar(&fno.ClientID, "fno-client-id", os.Getenv("FNO_CLIENT_ID"), "the app registration's client ID (default $FNO_CLIENT_ID)")
	fs.StringVar(&fno.AuthorityHost, "fno-authority-host", os.Getenv("FNO_AUTHORITY_HOST"), "Entra ID host (default $FNO_AUTHORITY_HOST, else login.microsoftonline.com)")
	fs.StringVar(&fno.CABundle, "fno-ca-bundle", os.Getenv("FNO_CA_BUNDLE"), "a PEM file of CAs to trust for F&O (default $FNO_CA_BUNDLE)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: localrun up [flags]\n\nWith -fno-base-url the functions use that F&O; its client secret is read from "+
			"$FNO_CLIENT_SECRET only (never a flag) and stored in moto's Secrets Manager.\n\nflags:")
		fs.PrintDefaults()
	}
	fs.Parse(args)
	if fno.BaseURL != "" {
		fno.ClientSecret = os.Getenv("FNO_CLIENT_SECRET")
		u.FnO = &fno
	}
	if config != "" {
		data, err := os.ReadFile(config)
		if err != nil {
			return fmt.Errorf("-config: %w", err)
		}
		u.Config = data
	}
	return u.Run(ctx)
}
