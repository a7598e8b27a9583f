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
// behind Runtime API hosts, on moto and the F&O emulator, going by the
// configuration document, operated through the operator's tool while they
// run (config apply, jobs run, a route and a job added, a route paused
// while files arrive and resumed, status). It passes only if every file
// (the data package included) and export ends where it should, the paused
// route's files waited and then went in drop order, and no secret or
// bearer token appears in any function's log, the env file or the demo's
// own output.
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
	for _, want := range []string{"processed", "failed", "rejected", "══ Notifications", "══ Metrics", "✓ every file and export ended where it should",
		"$ s3fno config apply config.json", "$ s3fno config apply config-2.json", "add route opening", "add route groups", "storing the package template customer-groups", "create vendor-package",
		"$ s3fno jobs run customer-groups", "$ s3fno jobs run vendor-package", "$ s3fno jobs run vendor-master", "create vendor-master",
		"deleted after its run", "vendor-master: execution vendor-master-",
		`$ s3fno pause journals --reason "month-end close"`, "while journals is paused: 6 of its files wait in inbound/, 0 reached F&O",
		"$ s3fno resume journals", "inbound/opening/opening-balances.zip             processed  processed  Succeeded",
		"══ The stack now, as the operator's tool shows it"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("summary lacks %q:\n%s", want, out.String())
		}
	}
	checkDemoNotifications(t, d.Notifications(), out.String())
	checkDemoMetrics(t, d.Metrics(), out.String())

	logs := map[string]string{"demo output": out.String()}
	env, err := os.ReadFile(filepath.Join(dir, "env.json"))
	if err != nil {
		t.Fatal(err)
	}
	logs["env.json"] = string(env)
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

// checkDemoNotifications: the stack's topic got exactly one message per
// file that needs a person, each of its kind and naming the file, in the
// summary too; nothing else (no stuck import, dead letter, failed export or
// refused credentials).
func checkDemoNotifications(t *testing.T, got []localrun.Notification, summary string) {
	t.Helper()
	want := []struct{ kind, key, subject, field, value string }{
		{"failed", "inbound/vendors/vendor-groups-bad.csv", "[demo] failed: vendors/vendor-groups-bad.csv: ProcessedWithErrors, 2 rows",
			"F&O status", "ProcessedWithErrors"},
		{"rejected", "inbound/unknown-route/stray.csv", "[demo] rejected: unknown-route/stray.csv: no-route", "Reason", "no-route"},
		{"rejected", "inbound/customers/empty.csv", "[demo] rejected: customers/empty.csv: empty-file", "Reason", "empty-file"},
	}
	for _, w := range want {
		var of []localrun.Notification
		for _, n := range got {
			if n.Field("Dropped as") == w.key {
				of = append(of, n)
			}
		}
		if len(of) != 1 {
			t.Errorf("%d notifications of %s, want exactly one", len(of), w.key)
			continue
		}
		if n := of[0]; n.Kind != w.kind || n.Subject != w.subject || n.Field(w.field) != w.value {
			t.Errorf("notification of %s: kind %q, subject %q, %s %q; want %s, %q, %q", w.key, n.Kind, n.Subject, w.field, n.Field(w.field),
				w.kind, w.subject, w.value)
		}
		if !strings.Contains(summary, w.subject) {
			t.Errorf("the summary does not show %q", w.subject)
		}
	}
	if len(got) != len(want) {
		for _, n := range got {
			t.Logf("notification: %s", n.Subject)
		}
		t.Errorf("%d notifications, want %d", len(got), len(want))
	}
	for _, n := range got {
		if n.Kind == "failed" && !strings.Contains(n.Field("First error rows"), "Field 'Name' must be filled in.") {
			t.Errorf("the failed file's notification lacks F&O's error rows: %q", n.Message)
		}
	}
}

// checkDemoMetrics: the functions' EMF lines count the files by outcome and
// the exports as the summary shows them, and no notification was missed.
func checkDemoMetrics(t *testing.T, got []localrun.MetricSum, summary string) {
	t.Helper()
	for name, want := range map[string]float64{"FilesProcessed": 13, "FilesFailed": 1, "FilesRejected": 2, "FilesRouted": 14,
		"FilesEnqueued": 14, "ExportsLanded": 4, "NotificationsSent": 3} {
		if m, _ := localrun.SumMetric(got, name); m.Sum != want {
			t.Errorf("metric %s sums to %v, want %v", name, m.Sum, want)
		}
		if !strings.Contains(summary, "  "+name+" ") {
			t.Errorf("the summary's metrics table lacks %s", name)
		}
	}
	if m, ok := localrun.SumMetric(got, "NotificationsFailed"); ok {
		t.Errorf("NotificationsFailed %v: a notification was not sent", m.Sum)
	}
	if m, ok := localrun.SumMetric(got, "PollerRecordsChecked"); !ok || m.Sum == 0 {
		t.Errorf("PollerRecordsChecked %+v, want the poller's checks counted", m)
	}
}
