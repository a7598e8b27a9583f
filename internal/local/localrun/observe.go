package localrun

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

// What the functions would have told people and counted, read off the
// local stand-ins: the messages of the notification topic (through the
// queue Provision subscribes to it) and the CloudWatch Embedded Metric
// Format lines of the functions' output.

// Notification is one message the functions published to the stack's
// topic, as the subscribed queue received it (SNS's JSON envelope).
type Notification struct {
	Kind    string `json:"kind"` // failed, rejected, stuck, export-failed, dead-letter, credentials
	Subject string `json:"subject"`
	Message string `json:"message"`
	// Fields are the message's "Name: value" lines (a value's continuation
	// lines included).
	Fields map[string]string `json:"fields,omitempty"`
}

// Field is the value of one of the message's fields, or "".
func (n Notification) Field(name string) string { return n.Fields[name] }

// ReadNotifications receives every message on the notification queue
// (deleting them, so a second read sees only newer ones) and returns them
// sorted by subject.
func ReadNotifications(ctx context.Context, q *sqs.Client, queueURL string) ([]Notification, error) {
	out := []Notification{}
	for empty := 0; empty < 2; {
		res, err := q.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &queueURL, MaxNumberOfMessages: 10, VisibilityTimeout: 300})
		if err != nil {
			return nil, fmt.Errorf("read the notifications queue: %w", err)
		}
		if len(res.Messages) == 0 {
			empty++
			continue
		}
		for _, m := range res.Messages {
			out = append(out, parseNotification(aws.ToString(m.Body)))
			if _, err := q.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: &queueURL, ReceiptHandle: m.ReceiptHandle}); err != nil {
				return nil, fmt.Errorf("read the notifications queue: %w", err)
			}
		}
	}
	slices.SortStableFunc(out, func(a, b Notification) int { return strings.Compare(a.Subject, b.Subject) })
	return out, nil
}

// parseNotification reads SNS's envelope ({"Type":"Notification",
// "Subject":..., "Message":...}); a body that is not one is the message.
func parseNotification(body string) Notification {
	var env struct{ Subject, Message string }
	if err := json.Unmarshal([]byte(body), &env); err != nil || (env.Subject == "" && env.Message == "") {
		env.Message = body
	}
	n := Notification{Subject: env.Subject, Message: env.Message, Kind: subjectKind(env.Subject)}
	for _, f := range messageFields(env.Message) {
		if n.Fields == nil {
			n.Fields = map[string]string{}
		}
		n.Fields[f[0]] = f[1]
	}
	return n
}

// subjectKind is the kind of a subject "[stack] kind: what".
func subjectKind(subject string) string {
	_, rest, ok := strings.Cut(subject, "] ")
	if !ok {
		return ""
	}
	kind, _, ok := strings.Cut(rest, ": ")
	if !ok {
		return ""
	}
	return kind
}

// messageFields are the "Name: value" lines of a notification's text
// (notify.Message: the body, a blank line, then the fields), in order; a
// line that starts with a space continues the value before it.
func messageFields(msg string) [][2]string {
	blocks := strings.Split(strings.TrimRight(msg, "\n"), "\n\n")
	var out [][2]string
	for _, line := range strings.Split(blocks[len(blocks)-1], "\n") {
		if strings.HasPrefix(line, " ") && len(out) > 0 {
			out[len(out)-1][1] += "\n" + line
			continue
		}
		name, value, ok := strings.Cut(line, ": ")
		if !ok || name == "" || strings.ContainsAny(name, ".,;") {
			continue
		}
		out = append(out, [2]string{name, value})
	}
	return out
}

// keyFields are the fields a short listing shows, in this order.
var keyFields = []string{"Dropped as", "Reason", "F&O status", "Last F&O status", "Message ID", "Execution ID", "Job",
	"Correlation ID", "Stage", "SQS message ID", "Reason document", "Result document", "Staging error file",
	"Target error keys file", "First error rows"}

// printNotification writes a notification's subject and, indented, its
// fields: all of them, or only keyFields.
func printNotification(w io.Writer, indent string, n Notification, all bool) {
	fmt.Fprintf(w, "%s%s\n", indent, n.Subject)
	fields := messageFields(n.Message)
	if all {
		if body, _, _ := strings.Cut(n.Message, "\n\n"); strings.TrimSpace(body) != "" {
			fields = append([][2]string{{"Text", body}}, fields...)
		}
	} else {
		var key [][2]string
		for _, name := range keyFields {
			if v := n.Field(name); v != "" {
				key = append(key, [2]string{name, v})
			}
		}
		fields = key
	}
	for _, f := range fields {
		v := f[1]
		if len(v) > 300 {
			v = v[:300] + "…"
		}
		v = strings.ReplaceAll(v, "\n", "\n"+indent+"    ")
		fmt.Fprintf(w, "%s    %s: %s\n", indent, f[0], v)
	}
}

// MetricSum is one metric over the EMF lines read.
type MetricSum struct {
	Name string `json:"name"`
	Unit string `json:"unit"`
	// Lines counts the EMF lines that carry it; Values the values added
	// up: one per line, or each sample of a line that carries several (a
	// latency).
	Lines  int     `json:"lines"`
	Values int     `json:"values"`
	Sum    float64 `json:"sum"`
	Max    float64 `json:"max"`
	// By is the sum per value of the dimensions other than Stack
	// ("Route=customers", "Job=vendor-package", "Function=poller").
	By map[string]float64 `json:"by,omitempty"`
}

// SumMetric finds a metric's sum in sums; ok is false when no line carried it.
func SumMetric(sums []MetricSum, name string) (MetricSum, bool) {
	i := slices.IndexFunc(sums, func(m MetricSum) bool { return m.Name == name })
	if i < 0 {
		return MetricSum{}, false
	}
	return sums[i], true
}

// isEMF reports whether line is an EMF line: a JSON object with an _aws
// member that declares CloudWatchMetrics.
func isEMF(line []byte) bool {
	line = bytes.TrimSpace(line)
	if len(line) == 0 || line[0] != '{' || !bytes.Contains(line, []byte(`"_aws"`)) {
		return false
	}
	var root struct {
		AWS *struct {
			CloudWatchMetrics []json.RawMessage `json:"CloudWatchMetrics"`
		} `json:"_aws"`
	}
	return json.Unmarshal(line, &root) == nil && root.AWS != nil && root.AWS.CloudWatchMetrics != nil
}

// EMFLines returns the EMF lines of a function's output (log lines and
// anything else are skipped).
func EMFLines(r io.Reader) ([]json.RawMessage, error) {
	var out []json.RawMessage
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 4<<20)
	for sc.Scan() {
		if line := sc.Bytes(); isEMF(line) {
			out = append(out, json.RawMessage(slices.Clone(bytes.TrimSpace(line))))
		}
	}
	return out, sc.Err()
}

// SumEMF adds up each metric declared in the EMF lines, sorted by name.
func SumEMF(lines []json.RawMessage) []MetricSum {
	sums := map[string]*MetricSum{}
	for _, line := range lines {
		var root map[string]json.RawMessage
		if json.Unmarshal(line, &root) != nil {
			continue
		}
		var d struct {
			CloudWatchMetrics []struct {
				Dimensions [][]string
				Metrics    []struct{ Name, Unit string }
			}
		}
		if json.Unmarshal(root["_aws"], &d) != nil {
			continue
		}
		for _, set := range d.CloudWatchMetrics {
			by := dimensionKey(root, set.Dimensions)
			for _, m := range set.Metrics {
				s := sums[m.Name]
				if s == nil {
					s = &MetricSum{Name: m.Name, Unit: m.Unit}
					sums[m.Name] = s
				}
				vs := emfValues(root[m.Name])
				if len(vs) > 0 {
					s.Lines++
				}
				for _, v := range vs {
					if s.Values == 0 || v > s.Max {
						s.Max = v
					}
					s.Values++
					s.Sum += v
					if by != "" {
						if s.By == nil {
							s.By = map[string]float64{}
						}
						s.By[by] += v
					}
				}
			}
			// A metric is declared in one set of a line; a line's value
			// is counted once even if two sets declared it.
			for _, m := range set.Metrics {
				delete(root, m.Name)
			}
		}
	}
	out := []MetricSum{}
	for _, name := range slices.Sorted(maps.Keys(sums)) {
		out = append(out, *sums[name])
	}
	return out
}

// dimensionKey is "Name=value[,Name=value]" of a line's dimensions other
// than Stack, over every dimension set declared.
func dimensionKey(root map[string]json.RawMessage, sets [][]string) string {
	names := map[string]bool{}
	for _, set := range sets {
		for _, n := range set {
			if n != "Stack" {
				names[n] = true
			}
		}
	}
	var parts []string
	for _, n := range slices.Sorted(maps.Keys(names)) {
		var v string
		if json.Unmarshal(root[n], &v) == nil {
			parts = append(parts, n+"="+v)
		}
	}
	return strings.Join(parts, ",")
}

// emfValues is a metric member's value or values.
func emfValues(raw json.RawMessage) []float64 {
	var one float64
	if json.Unmarshal(raw, &one) == nil {
		return []float64{one}
	}
	var many []float64
	if json.Unmarshal(raw, &many) == nil {
		return many
	}
	return nil
}

// printMetrics writes a table of sums: name, unit, how many lines carry
// it, sum, largest value and the sum per route, job or function.
func printMetrics(w io.Writer, indent string, sums []MetricSum) {
	rows := [][]string{{"METRIC", "UNIT", "LINES", "SUM", "MAX", "BY"}}
	for _, m := range sums {
		var by []string
		for _, k := range slices.Sorted(maps.Keys(m.By)) {
			_, v, _ := strings.Cut(k, "=")
			if strings.Contains(k, ",") {
				v = k
			}
			by = append(by, v+" "+num(m.By[k]))
		}
		rows = append(rows, []string{m.Name, m.Unit, strconv.Itoa(m.Lines), num(m.Sum), num(m.Max), strings.Join(by, ", ")})
	}
	widths := make([]int, len(rows[0]))
	for _, r := range rows {
		for i, c := range r {
			widths[i] = max(widths[i], len([]rune(c)))
		}
	}
	for _, r := range rows {
		var b strings.Builder
		b.WriteString(indent)
		for i, c := range r {
			if i == len(r)-1 {
				b.WriteString(c)
				break
			}
			b.WriteString(c + strings.Repeat(" ", widths[i]-len([]rune(c))+2))
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
}

// num prints a metric value: whole numbers without a fraction.
func num(v float64) string {
	if v == float64(int64(v)) {
		return strconv.FormatInt(int64(v), 10)
	}
	return strconv.FormatFloat(v, 'f', 1, 64)
}

// emfTee passes a function's output on and keeps its EMF lines.
type emfTee struct {
	w io.Writer

	mu    sync.Mutex
	part  []byte // an unfinished line
	lines []json.RawMessage
}

func (t *emfTee) Write(p []byte) (int, error) {
	t.mu.Lock()
	t.part = append(t.part, p...)
	for {
		i := bytes.IndexByte(t.part, '\n')
		if i < 0 {
			break
		}
		if line := t.part[:i]; isEMF(line) {
			t.lines = append(t.lines, json.RawMessage(slices.Clone(bytes.TrimSpace(line))))
		}
		t.part = t.part[i+1:]
	}
	t.mu.Unlock()
	return t.w.Write(p)
}

// emf returns the EMF lines seen, the unfinished last line included.
func (t *emfTee) emf() []json.RawMessage {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := slices.Clone(t.lines)
	if isEMF(t.part) {
		out = append(out, json.RawMessage(slices.Clone(bytes.TrimSpace(t.part))))
	}
	return out
}
