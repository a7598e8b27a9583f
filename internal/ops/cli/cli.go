// Package cli is the operator's command-line tool, s3fno: the table of
// commands, their flags, how they address a deployment (internal/ops/stack)
// and how they print (a table for people, --json for scripts) and end.
// Each command's work is in its own package under internal/ops/.
//
// Exit codes: 0 all is well (found, moved, no failures, every check
// passed); 1 the command ran and found a problem (not found, failures
// listed, a check failed, a message not moved); 2 it could not run (usage,
// configuration, AWS or F&O unreachable before anything was done).
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/fno-bridge/s3-fno/internal/ops/stack"
)

// Exit codes.
const (
	ExitOK       = 0 // all is well
	ExitProblems = 1 // it ran and found a problem, or not what was asked for
	ExitUsage    = 2 // it could not run: usage, configuration, unreachable
)

// Command is one command of the tool. To add one, add it to Commands: its
// name (two words for a command with subcommands, such as "config
// validate"), what it takes, a line saying what it does, its own flags
// (the common ones, which address the deployment, and --json come with
// every command) and the function that does the work.
type Command struct {
	Name    string
	Args    string // its positional arguments, for usage
	NArgs   int    // how many it takes
	Summary string
	Flags   func(fs *flag.FlagSet, o *Options)
	Run     func(ctx context.Context, a *App, args []string) (Result, error)
}

// Result is what a command found: printed as a table or as JSON; Code is
// the exit code when the command ran.
type Result struct {
	Report interface{ Table(io.Writer) error }
	Code   int
}

// Options are the command-specific flags (each command reads its own).
type Options struct {
	Route  string
	Since  string
	Reason string
	Force  bool
}

// App is what a command works with: the deployment and its clients.
type App struct {
	Stack   *stack.Stack
	Clients *stack.Clients
	Options Options
	Now     func() time.Time
}

// Main runs the tool with args (without the program name) and returns the
// exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stdout)
		if len(args) == 0 {
			return ExitUsage
		}
		return ExitOK
	}
	cmd, rest := lookup(args)
	if cmd == nil {
		fmt.Fprintf(stderr, "s3fno: no command %q\n\n", args[0])
		usage(stderr)
		return ExitUsage
	}
	var sf stack.Flags
	var opts Options
	asJSON := false
	fs := flag.NewFlagSet("s3fno "+cmd.Name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	sf.Register(fs)
	fs.BoolVar(&asJSON, "json", false, "print JSON for scripts instead of a table")
	if cmd.Flags != nil {
		cmd.Flags(fs, &opts)
	}
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: s3fno %s [flags] %s\n\n%s\n\nflags:\n", cmd.Name, cmd.Args, cmd.Summary)
		fs.PrintDefaults()
	}
	pos, err := parse(fs, rest)
	if errors.Is(err, flag.ErrHelp) {
		return ExitOK
	}
	if err != nil {
		return ExitUsage
	}
	if len(pos) != cmd.NArgs {
		fmt.Fprintf(stderr, "s3fno %s: takes %s (got %d argument%s)\n", cmd.Name, argsText(cmd), len(pos), plural(len(pos)))
		fs.Usage()
		return ExitUsage
	}
	st, clients, err := stack.Open(ctx, sf)
	if err != nil {
		fmt.Fprintf(stderr, "s3fno %s: %v\n", cmd.Name, err)
		return ExitUsage
	}
	a := &App{Stack: st, Clients: clients, Options: opts, Now: time.Now}
	res, err := cmd.Run(ctx, a, pos)
	return finish(cmd, res, err, asJSON, stdout, stderr)
}

// finish prints what a command found and its error, and gives the exit
// code.
func finish(cmd *Command, res Result, err error, asJSON bool, stdout, stderr io.Writer) int {
	if res.Report != nil {
		var perr error
		if asJSON {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			perr = enc.Encode(res.Report)
		} else {
			perr = res.Report.Table(stdout)
		}
		if perr != nil {
			fmt.Fprintf(stderr, "s3fno %s: write: %v\n", cmd.Name, perr)
			return ExitUsage
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "s3fno %s: %v\n", cmd.Name, err)
		if strings.Contains(err.Error(), "get credentials") {
			fmt.Fprintln(stderr, "(no AWS credentials were found: give --profile, set AWS_PROFILE or AWS_ACCESS_KEY_ID, or run where a role provides them)")
		}
		if res.Code != ExitOK {
			return res.Code
		}
		return ExitUsage
	}
	return res.Code
}

// parse parses flags wherever they are among the arguments and returns
// the positional ones.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos, args = append(pos, args[0]), args[1:]
	}
}

// lookup finds the command args name: two words first, then one.
func lookup(args []string) (*Command, []string) {
	if len(args) > 1 {
		for i := range Commands {
			if Commands[i].Name == args[0]+" "+args[1] {
				return &Commands[i], args[2:]
			}
		}
	}
	for i := range Commands {
		if Commands[i].Name == args[0] {
			return &Commands[i], args[1:]
		}
	}
	return nil, nil
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "s3fno: operate an s3-fno deployment (S3 ⇄ Dynamics 365 F&O)")
	fmt.Fprintln(w, "\nusage: s3fno COMMAND [flags] [arguments]")
	fmt.Fprintln(w, "\naddress the deployment with --stack NAME (a deployed stack), --env-file FILE (moto, the local runner)")
	fmt.Fprintln(w, "or flags such as --bucket and --import-queue; --json prints JSON. s3fno COMMAND -h lists every flag.")
	fmt.Fprintln(w, "\ncommands:")
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	for _, c := range Commands {
		fmt.Fprintf(tw, "  %s %s\t%s\n", c.Name, c.Args, c.Summary)
	}
	tw.Flush()
	fmt.Fprintln(w, "\nexit codes: 0 all is well; 1 it ran and found a problem (or not what was asked for); 2 it could not run")
}

func argsText(c *Command) string {
	if c.NArgs == 0 {
		return "no arguments"
	}
	return strings.TrimSpace(c.Args)
}

func plural(n int) string { return map[bool]string{true: "", false: "s"}[n == 1] }
