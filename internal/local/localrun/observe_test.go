package localrun

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/fno-bridge/s3-fno/internal/shared/metrics"
	"github.com/fno-bridge/s3-fno/internal/shared/notify"
)

// A notification read off the subscribed queue gives its kind (from the
// subject) and the fields notify.Message wrote, a multi-line value whole.
func TestParseNotification(t *testing.T) {
	ev := notify.Event{Kind: notify.Failed, ID: "x", What: "vendors/bad.csv: ProcessedWithErrors, 2 rows", Body: "An import did not succeed in F&O.",
		Fields: [][2]string{{"Route", "vendors"}, {"Dropped as", "inbound/vendors/bad.csv"}, {"Empty", ""},
			{"First error rows", "record 1, field Name: must be filled in.\n  record 2, field : no currency."}}}
	envelope, _ := json.Marshal(map[string]string{"Type": "Notification", "Subject": notify.Subject("demo", ev), "Message": notify.Message(ev)})
	n := parseNotification(string(envelope))
	if n.Kind != "failed" || n.Subject != "[demo] failed: vendors/bad.csv: ProcessedWithErrors, 2 rows" {
		t.Fatalf("kind %q subject %q", n.Kind, n.Subject)
	}
	want := map[string]string{"Route": "vendors", "Dropped as": "inbound/vendors/bad.csv",
		"First error rows": "record 1, field Name: must be filled in.\n  record 2, field : no currency."}
	if len(n.Fields) != len(want) {
		t.Errorf("fields %q, want %q", n.Fields, want)
	}
	for k, v := range want {
		if n.Field(k) != v {
			t.Errorf("%s = %q, want %q", k, n.Field(k), v)
		}
	}
	var out bytes.Buffer
	printNotification(&out, "  ", n, false)
	if got := out.String(); !strings.Contains(got, "  [demo] failed: vendors/bad.csv") || strings.Contains(got, "Route:") ||
		!strings.Contains(got, "      First error rows: record 1, field Name: must be filled in.\n        record 2") {
		t.Errorf("short listing:\n%s", got)
	}
	out.Reset()
	printNotification(&out, "", n, true)
	if got := out.String(); !strings.Contains(got, "    Text: An import did not succeed in F&O.\n    Route: vendors\n") {
		t.Errorf("full listing:\n%s", got)
	}
	if n := parseNotification("not an envelope"); n.Message != "not an envelope" || n.Kind != "" {
		t.Errorf("a raw body: %+v", n)
	}
}

// The EMF lines metrics.Recorder writes, found among log lines (also when
// the output arrives in pieces), are summed per metric: per line, each
// sample of a latency, per route.
func TestSumEMF(t *testing.T) {
	var emf bytes.Buffer
	rec := metrics.New("demo", &emf)
	rec.Add("FilesRouted", 2, metrics.Route, "customers")
	rec.Add("FilesRouted", 1, metrics.Route, "vendors")
	rec.Observe("EnqueueLatency", 40, metrics.Route, "customers")
	rec.Observe("EnqueueLatency", 60, metrics.Route, "customers")
	rec.Add("PollerRecordsChecked", 3)
	rec.Flush()
	rec.Add("FilesRouted", 4, metrics.Route, "customers")
	rec.Flush()
	output := `{"level":"INFO","message":"a log line","requestId":"r1"}` + "\n" + emf.String() + "plain text\n" +
		`{"_aws":"not a directive"}` + "\n"

	var passed bytes.Buffer
	tee := &emfTee{w: &passed}
	for i := 0; i < len(output); i += 7 {
		tee.Write([]byte(output[i:min(i+7, len(output))]))
	}
	if passed.String() != output {
		t.Fatalf("the output was not passed on as it came")
	}
	lines, err := EMFLines(strings.NewReader(output))
	if err != nil {
		t.Fatal(err)
	}
	if got := tee.emf(); len(got) != len(lines) || len(lines) != 4 {
		t.Fatalf("tee kept %d lines, EMFLines found %d, want 4:\n%s", len(got), len(lines), output)
	}
	sums := SumEMF(lines)
	routed, _ := SumMetric(sums, "FilesRouted")
	if routed.Sum != 7 || routed.Lines != 3 || routed.Max != 4 || routed.By["Route=customers"] != 6 || routed.By["Route=vendors"] != 1 ||
		routed.Unit != "Count" {
		t.Errorf("FilesRouted %+v", routed)
	}
	latency, _ := SumMetric(sums, "EnqueueLatency")
	if latency.Values != 2 || latency.Lines != 1 || latency.Sum != 100 || latency.Max != 60 || latency.Unit != "Milliseconds" {
		t.Errorf("EnqueueLatency %+v", latency)
	}
	checked, _ := SumMetric(sums, "PollerRecordsChecked")
	if checked.Sum != 3 || len(checked.By) != 0 {
		t.Errorf("PollerRecordsChecked %+v", checked)
	}
	var table bytes.Buffer
	printMetrics(&table, "", sums)
	if !strings.Contains(table.String(), "FilesRouted           Count         3      7    4    customers 6, vendors 1\n") {
		t.Errorf("table:\n%s", table.String())
	}
}
