package metrics_test

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/fno-bridge/s3-fno/internal/shared/metrics"
)

// emfLine is what CloudWatch reads of an EMF line.
type emfLine struct {
	AWS struct {
		Timestamp         int64 `json:"Timestamp"`
		CloudWatchMetrics []struct {
			Namespace  string     `json:"Namespace"`
			Dimensions [][]string `json:"Dimensions"`
			Metrics    []struct {
				Name string `json:"Name"`
				Unit string `json:"Unit"`
			} `json:"Metrics"`
		} `json:"CloudWatchMetrics"`
	} `json:"_aws"`
}

// TestEMF: each line is one JSON object that CloudWatch's Embedded Metric
// Format accepts: a Timestamp in milliseconds, the namespace, dimension
// sets whose every dimension has a string value in the root, and each
// declared metric's number in the root, with its catalog unit; counters
// add up within an invocation, gauges keep the last value, and Flush
// forgets what it wrote.
func TestEMF(t *testing.T) {
	var out bytes.Buffer
	r := metrics.New("prod-stack", &out)
	r.Add("FilesFailed", 1, metrics.Route, "customers")
	r.Add("FilesFailed", 2, metrics.Route, "customers")
	r.Add("FilesProcessed", 5, metrics.Route, "customers")
	r.Add("FilesFailed", 1, metrics.Route, "vendors")
	r.Set("ImportsInFlight", 9, metrics.Route, "vendors")
	r.Set("ImportsInFlight", 7, metrics.Route, "vendors")
	r.Add("PollerRunDuration", 1234)
	r.Flush()
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines, want one per dimension set:\n%s", len(lines), out.String())
	}
	want := map[string]map[string]float64{
		"customers": {"FilesFailed": 3, "FilesProcessed": 5},
		"vendors":   {"FilesFailed": 1, "ImportsInFlight": 7},
		"":          {"PollerRunDuration": 1234},
	}
	for _, l := range lines {
		var root map[string]any
		var e emfLine
		if err := json.Unmarshal([]byte(l), &root); err != nil {
			t.Fatalf("not JSON: %s", l)
		}
		if err := json.Unmarshal([]byte(l), &e); err != nil || e.AWS.Timestamp < 1e12 || len(e.AWS.CloudWatchMetrics) == 0 {
			t.Fatalf("no EMF directive: %s", l)
		}
		route, _ := root["Route"].(string)
		if root["Stack"] != "prod-stack" {
			t.Fatalf("Stack = %v", root["Stack"])
		}
		got := map[string]float64{}
		for _, set := range e.AWS.CloudWatchMetrics {
			if set.Namespace != metrics.Namespace || len(set.Dimensions) == 0 {
				t.Fatalf("metric set %+v", set)
			}
			for _, dims := range set.Dimensions {
				for _, d := range dims {
					if _, ok := root[d].(string); !ok {
						t.Fatalf("dimension %s has no string value in %s", d, l)
					}
				}
			}
			for _, m := range set.Metrics {
				def, ok := metrics.Lookup(m.Name)
				if !ok || string(def.Unit) != m.Unit {
					t.Fatalf("metric %+v: catalog %+v", m, def)
				}
				if !slices.ContainsFunc(set.Dimensions, func(d []string) bool { return slices.Equal(d, []string{metrics.Stack}) }) {
					t.Fatalf("%s cannot be alarmed on for the whole stack: %v", m.Name, set.Dimensions)
				}
				v, ok := root[m.Name].(float64)
				if !ok {
					t.Fatalf("%s has no number in %s", m.Name, l)
				}
				got[m.Name] = v
			}
		}
		if !mapsEqual(got, want[route]) {
			t.Errorf("route %q: %v, want %v", route, got, want[route])
		}
	}
	out.Reset()
	r.Flush()
	if out.Len() != 0 {
		t.Fatalf("a second Flush wrote %q", out.String())
	}
}

// TestUnknownMetricIsRefused: a metric outside the catalog would be one
// nobody alarms on or charts; recording it is a programming error.
func TestUnknownMetricIsRefused(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("an unknown metric was recorded")
		}
	}()
	metrics.New("s", &bytes.Buffer{}).Add("Whatever", 1)
}

func mapsEqual(a, b map[string]float64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
