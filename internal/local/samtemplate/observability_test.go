package samtemplate_test

// The template's observability: every alarm tells the stack's topic (or
// the operator's own), once when it starts and once when it stops; the
// dashboard and the alarms name only metrics the code writes, with the
// dimensions it writes them with, and the dashboard shows every one.

import (
	"encoding/json"
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/fno-bridge/s3-fno/internal/local/samtemplate"
	"github.com/fno-bridge/s3-fno/internal/shared/metrics"
)

func TestAlarmsTellTheTopic(t *testing.T) {
	own := "arn:aws:sns:us-east-1:123456789012:operations"
	for _, tc := range []struct{ name, param string }{{"the stack's topic", ""}, {"the operator's topic", own}} {
		t.Run(tc.name, func(t *testing.T) {
			params := with(fnoValues, "AlarmTopicArn", tc.param).Parameters
			tpl := translate(t, params)
			vals := deployed(t, tpl, samtemplate.Values{Parameters: params})
			topic := own
			if tc.param == "" {
				topic = vals.Resources["AlarmTopic"]
			}
			created, err := tpl.Condition(tpl.Resources["AlarmTopic"].Condition, vals)
			if err != nil {
				t.Fatal(err)
			}
			if created != (tc.param == "") {
				t.Errorf("AlarmTopic created %v with AlarmTopicArn %q", created, tc.param)
			}
			for _, id := range slices.Sorted(maps.Keys(tpl.Resources)) {
				if tpl.Resources[id].Type != "AWS::Lambda::Function" {
					continue
				}
				env := mustEval(t, tpl, tpl.Resources[id].Properties["Environment"], vals).(map[string]any)["Variables"].(map[string]any)
				if got := strOf(env["NOTIFY_TOPIC_ARN"]); got != topic {
					t.Errorf("%s: NOTIFY_TOPIC_ARN %q, want %q", id, got, topic)
				}
				if got := strOf(env["STACK_NAME"]); got != vals.StackName {
					t.Errorf("%s: STACK_NAME %q, want %q", id, got, vals.StackName)
				}
			}
			alarms := alarmIDs(tpl)
			if len(alarms) < 8 {
				t.Fatalf("alarms %v", alarms)
			}
			for _, id := range alarms {
				p := mustEval(t, tpl, tpl.Resources[id].Properties, vals).(map[string]any)
				want := []string{topic}
				for _, k := range []string{"AlarmActions", "OKActions"} {
					if got := stringsOf(p[k]); !slices.Equal(got, want) {
						t.Errorf("%s: %s %v, want %v", id, k, got, want)
					}
				}
				if p["Namespace"] == metrics.Namespace {
					checkCatalogued(t, id, strOf(p["MetricName"]), alarmDims(p))
				}
			}
		})
	}
}

// TestEmailSubscriptionIsOptional: AlarmEmail subscribes an address to the
// stack's topic, and only when the stack creates it.
func TestEmailSubscriptionIsOptional(t *testing.T) {
	tpl := loadTemplate(t)
	sub := tpl.Resources["AlarmTopicEmail"]
	if sub.Type != "AWS::SNS::Subscription" {
		t.Fatalf("AlarmTopicEmail is %q", sub.Type)
	}
	for _, tc := range []struct {
		email, topic string
		want         bool
	}{
		{"", "", false},
		{"ops@example.com", "", true},
		{"ops@example.com", "arn:aws:sns:us-east-1:123456789012:operations", false},
	} {
		got, err := tpl.Condition(sub.Condition, with(fnoValues, "AlarmEmail", tc.email, "AlarmTopicArn", tc.topic))
		if err != nil {
			t.Fatal(err)
		}
		if got != tc.want {
			t.Errorf("AlarmEmail %q, AlarmTopicArn %q: subscribed %v, want %v", tc.email, tc.topic, got, tc.want)
		}
	}
}

func TestDashboard(t *testing.T) {
	tpl := translate(t, fnoValues.Parameters)
	vals := deployed(t, tpl, samtemplate.Values{Parameters: fnoValues.Parameters})
	body := mustEvalString(t, tpl, tpl.Resources["Dashboard"].Properties["DashboardBody"], vals)
	var dash struct {
		Widgets []struct {
			Type       string `json:"type"`
			Properties struct {
				Alarms  []string `json:"alarms"`
				Metrics [][]any  `json:"metrics"`
				Query   string   `json:"query"`
			} `json:"properties"`
		} `json:"widgets"`
	}
	if err := json.Unmarshal([]byte(body), &dash); err != nil {
		t.Fatalf("the dashboard body is not JSON: %v\n%s", err, body)
	}
	shown := map[string]bool{}
	var alarms []string
	var queries []string
	for _, w := range dash.Widgets {
		switch w.Type {
		case "alarm":
			alarms = append(alarms, w.Properties.Alarms...)
		case "log":
			queries = append(queries, w.Properties.Query)
		case "metric":
			for name := range dashboardMetrics(t, w.Properties.Metrics) {
				shown[name] = true
			}
		default:
			t.Errorf("widget type %q", w.Type)
		}
	}
	for _, d := range metrics.Catalog {
		if !shown[d.Name] {
			t.Errorf("metric %s is written but not on the dashboard", d.Name)
		}
	}
	var want []string
	for _, id := range alarmIDs(tpl) {
		want = append(want, vals.Attributes[id+".Arn"])
	}
	slices.Sort(alarms)
	if slices.Sort(want); !slices.Equal(alarms, want) {
		t.Errorf("alarm widget shows %v, want every alarm %v", alarms, want)
	}
	if len(queries) != 1 {
		t.Fatalf("log widgets %d, want 1", len(queries))
	}
	for _, lg := range []string{"RouterLogGroup", "EnqueueLogGroup", "PollerLogGroup", "DequeueLogGroup"} {
		if src := "SOURCE '" + vals.Resources[lg] + "'"; !strings.Contains(queries[0], src) {
			t.Errorf("the log widget does not read %s (%s)", lg, src)
		}
	}
}

// dashboardMetrics checks a metric widget's rows and returns the S3FnO
// metrics they show. Rows are CloudWatch's shorthand: "." repeats the
// previous row's item at that place, "..." repeats the rest of it.
func dashboardMetrics(t *testing.T, rows [][]any) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	var prev []string
	for _, row := range rows {
		if len(row) == 1 {
			if m, ok := row[0].(map[string]any); ok {
				for name := range searchMetrics(t, strOf(m["expression"])) {
					out[name] = true
				}
				continue
			}
		}
		var items []string
		for _, v := range row {
			if s, ok := v.(string); ok {
				items = append(items, s)
			}
		}
		if len(items) > 0 && items[0] == "..." {
			if len(prev) < len(items)-1 {
				t.Fatalf("row %v repeats a shorter row %v", row, prev)
			}
			items = append(slices.Clone(prev[:len(prev)-(len(items)-1)]), items[1:]...)
		}
		for i, s := range items {
			if s == "." && i < len(prev) {
				items[i] = prev[i]
			}
		}
		prev = items
		if len(items) < 2 || items[0] != metrics.Namespace {
			continue
		}
		var dims []string
		for i := 2; i+1 < len(items); i += 2 {
			dims = append(dims, items[i])
		}
		checkCatalogued(t, "the dashboard", items[1], dims)
		out[items[1]] = true
	}
	return out
}

var (
	searchSchema = regexp.MustCompile(`\{` + metrics.Namespace + `,([^}]*)\}`)
	searchName   = regexp.MustCompile(`MetricName="([^"]+)"`)
)

// searchMetrics reads a SEARCH expression's schema and metric names.
func searchMetrics(t *testing.T, expr string) map[string]bool {
	t.Helper()
	schema := searchSchema.FindStringSubmatch(expr)
	names := searchName.FindAllStringSubmatch(expr, -1)
	if schema == nil || len(names) == 0 {
		t.Errorf("expression %q names no %s schema or metric", expr, metrics.Namespace)
		return nil
	}
	out := map[string]bool{}
	for _, n := range names {
		checkCatalogued(t, "the dashboard", n[1], strings.Split(schema[1], ","))
		out[n[1]] = true
	}
	return out
}

// checkCatalogued: a metric the code writes, with one of the dimension sets
// it writes it with.
func checkCatalogued(t *testing.T, where, name string, dims []string) {
	t.Helper()
	d, ok := metrics.Lookup(name)
	if !ok {
		t.Errorf("%s: metric %s is not written by the code", where, name)
		return
	}
	got := slices.Sorted(slices.Values(dims))
	for _, set := range d.Dims {
		if slices.Equal(got, slices.Sorted(slices.Values(set))) {
			return
		}
	}
	t.Errorf("%s: metric %s with dimensions %v; the code writes it with %v", where, name, dims, d.Dims)
}

func alarmIDs(tpl *samtemplate.Template) []string {
	var ids []string
	for _, id := range slices.Sorted(maps.Keys(tpl.Resources)) {
		if tpl.Resources[id].Type == "AWS::CloudWatch::Alarm" {
			ids = append(ids, id)
		}
	}
	return ids
}

func alarmDims(p map[string]any) []string {
	var out []string
	for _, d := range asList(p["Dimensions"]) {
		m, _ := d.(map[string]any)
		out = append(out, strOf(m["Name"]))
	}
	return out
}
