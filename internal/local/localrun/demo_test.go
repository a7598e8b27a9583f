package localrun_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fno-bridge/s3-fno/internal/local/localrun"
)

// TestDemo runs `make demo`'s scenario: the four functions built and run
// behind Runtime API hosts, on moto and the F&O emulator. It passes only if
// every file and export ends where it should, and no secret or bearer token
// appears in any function's log or in the demo's own output.
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs all four functions")
	}
	repo, err := filepath.Abs("../../..")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var out bytes.Buffer
	d := &localrun.Demo{Repo: repo, Dir: dir, Timeout: 3 * time.Minute, Out: &out}
	if err := d.Run(context.Background()); err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	for _, want := range []string{"processed", "failed", "rejected", "✓ every file and export ended where it should"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("summary lacks %q:\n%s", want, out.String())
		}
	}

	logs := map[string]string{"demo output": out.String()}
	entries, err := os.ReadDir(filepath.Join(dir, "logs"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, "logs", e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(b, []byte(`"requestId"`)) {
			t.Errorf("%s has no JSON log line with a requestId", e.Name())
		}
		logs[e.Name()] = string(b)
	}
	if len(entries) != 4 {
		t.Fatalf("%d function logs, want 4", len(entries))
	}
	secrets := d.Secrets()
	if len(secrets) < 2 {
		t.Fatalf("the run issued no tokens? secrets = %d", len(secrets))
	}
	for name, text := range logs {
		for _, s := range secrets {
			if s != "" && strings.Contains(text, s) {
				t.Errorf("%s contains a secret or bearer token", name)
			}
		}
		if strings.Contains(text, "Bearer ") {
			t.Errorf("%s contains an Authorization header value", name)
		}
	}
}
