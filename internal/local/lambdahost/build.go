package lambdahost

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Build compiles the Go main package pkg (a path such as ./functions/router,
// relative to dir) into output, for this machine's OS and architecture, the
// way the Makefile builds bootstraps for Lambda: CGO_ENABLED=0,
// -tags lambda.norpc, -trimpath. The go command's output is in the error.
func Build(ctx context.Context, dir, pkg, output string) error {
	out, err := filepath.Abs(output)
	if err != nil {
		return fmt.Errorf("build %s: %w", pkg, err)
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return fmt.Errorf("build %s: %w", pkg, err)
	}
	goCmd := os.Getenv("GO")
	if goCmd == "" {
		goCmd = "go"
	}
	cmd := exec.CommandContext(ctx, goCmd, "build", "-tags", "lambda.norpc", "-trimpath", "-o", out, pkg)
	cmd.Dir = dir
	// GOOS/GOARCH are dropped so a shell set up for a Lambda cross-build
	// (GOOS=linux GOARCH=arm64) still yields a binary this machine can run.
	cmd.Env = append(withoutKeys(os.Environ(), "GOOS", "GOARCH", "CGO_ENABLED"), "CGO_ENABLED=0")
	var buf bytes.Buffer
	cmd.Stdout = &buf
	cmd.Stderr = &buf
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("build %s: %w\n%s", pkg, err, strings.TrimSpace(buf.String()))
	}
	return nil
}

func withoutKeys(env []string, keys ...string) []string {
	out := env[:0:0]
next:
	for _, kv := range env {
		for _, k := range keys {
			if strings.HasPrefix(kv, k+"=") {
				continue next
			}
		}
		out = append(out, kv)
	}
	return out
}
