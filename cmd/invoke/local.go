package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/fno-bridge/s3-fno/internal/local/localrun"
)

// eventFunctions maps the name prefix of an event file to its function,
// for invoking without -fn (make invoke EVENT=events/poller-schedule.json).
var eventFunctions = []struct{ prefix, function string }{
	{"router-", "RouterFunction"},
	{"enqueue-", "EnqueueFunction"},
	{"poller-", "PollerFunction"},
	{"dequeue-", "DequeueFunction"},
}

// functionForEvent is the function an event file is for, by its name, or "".
func functionForEvent(event string) string {
	base := filepath.Base(event)
	for _, m := range eventFunctions {
		if strings.HasPrefix(base, m.prefix) {
			return m.function
		}
	}
	return ""
}

// startLocal starts the stand-ins of a local invoke and points env at
// them: moto_server and the F&O emulator on 127.0.0.1, the stack
// provisioned on moto.
func startLocal(ctx context.Context, env map[string]string, stderr io.Writer) (*localrun.Sandbox, error) {
	sb, err := localrun.StartSandbox(ctx, localrun.SandboxOptions{})
	if err != nil {
		return nil, fmt.Errorf("local stand-ins: %w", err)
	}
	say(stderr, "moto_server on %s, F&O emulator on %s; bucket %s, import queue %s, secret %s",
		sb.MotoURL(), sb.Emulator().URL(), sb.Stack.Bucket, filepath.Base(sb.Stack.ImportURL), sb.Stack.SecretARN)
	for _, n := range sb.Apply(env) {
		say(stderr, "%s", n)
	}
	return sb, nil
}

// prepareLocal registers, seeds and rewrites for the event and returns the
// event to invoke with.
func prepareLocal(ctx context.Context, sb *localrun.Sandbox, event []byte, env map[string]string, seed bool, stderr io.Writer) ([]byte, error) {
	p, err := sb.Prepare(ctx, event, env, seed)
	if err != nil {
		return nil, fmt.Errorf("local stand-ins: %w", err)
	}
	for _, n := range p.Notes {
		say(stderr, "%s", n)
	}
	if string(p.Event) != string(event) {
		say(stderr, "the event's bucket (and the seeded objects' size, eTag, versionId) now name the local stack")
	}
	return p.Event, nil
}

// reportLocal says what the invoke changed and, when asked, writes it as
// JSON.
func reportLocal(ctx context.Context, sb *localrun.Sandbox, file string) (*localrun.Report, error) {
	rep, err := sb.Report(ctx)
	if err != nil {
		return nil, fmt.Errorf("local stand-ins: report: %w", err)
	}
	if file != "" {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(file, append(b, '\n'), 0o644); err != nil {
			return nil, fmt.Errorf("-report: %w", err)
		}
	}
	return rep, nil
}

func say(w io.Writer, format string, a ...any) {
	fmt.Fprintf(w, "invoke: local: "+format+"\n", a...)
}
