package localrun

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"path"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/fno-bridge/s3-fno/internal/imports/importmsg"
)

// endpoints are the emulator's endpoint names a report counts (see
// d365test's package documentation).
var endpoints = []string{
	"token", "enqueue", "dequeue", "download", "ack", "jobstatus",
	"GetMessageStatus", "GetExecutionIdByMessageId", "GetExecutionSummaryStatus", "GetExecutionErrors",
	"GetImportStagingErrorFileUrl", "GenerateImportTargetErrorKeysFile", "GetImportTargetErrorKeysFileUrl",
	"GetEntityExecutionSummaryStatusList", "GetExecutionSummaryPageUrl", "GetAzureWriteUrl",
	"ImportFromPackage", "ImportFromPackageAsync", "ExportToPackage", "ExportToPackageAsync", "GetExportedPackageUrl",
	"blob-put", "blob-get", "foreign-download", "unknown",
}

// snapshot is the sandbox's state before the invoke.
type snapshot struct {
	keys     map[string]string // key → ETag
	messages map[string]bool   // F&O message IDs
	requests map[string]int    // per endpoint
	total    int               // F&O listener
	acked    map[string]int    // activity → acked exports
}

func (s *Sandbox) snapshot(ctx context.Context) (*snapshot, error) {
	// What was published before the invoke (nothing, as Prepare seeds
	// without notifying) is not the invoke's.
	if _, err := ReadNotifications(ctx, s.sqs, s.Stack.NotifyQueueURL); err != nil {
		return nil, err
	}
	keys, err := listObjects(ctx, s.s3, s.Stack.Bucket)
	if err != nil {
		return nil, err
	}
	sn := &snapshot{keys: keys, messages: map[string]bool{}, requests: map[string]int{}, acked: map[string]int{},
		total: s.emu.TotalRequests()}
	for _, m := range s.emu.Messages() {
		sn.messages[m.ID] = true
	}
	for _, e := range endpoints {
		sn.requests[e] = s.emu.Requests(e)
	}
	for _, a := range s.activities {
		sn.acked[a] = len(s.emu.Acked(a))
	}
	return sn, nil
}

// Report is what an invoke changed on the stand-ins.
type Report struct {
	Bucket  string   `json:"bucket"`
	Created []string `json:"created"` // S3 keys that appeared
	Updated []string `json:"updated"` // S3 keys rewritten
	Removed []string `json:"removed"` // S3 keys gone (moved files leave inbound/)
	// Documents are the created reason and result documents
	// (<file>.reason.json, <file>.result.json), as stored.
	Documents map[string]json.RawMessage `json:"documents,omitempty"`

	ImportQueue string          `json:"importQueue"`
	Queued      []QueuedMessage `json:"queued"` // FIFO import messages sent

	FnORequests   int            `json:"fnoRequests"` // to the F&O listener
	Endpoints     map[string]int `json:"endpoints"`   // per endpoint, Entra's token endpoint and blob storage included
	FnOMessages   []FnOMessage   `json:"fnoMessages"` // enqueued in F&O
	AckedExports  []AckedExport  `json:"ackedExports"`
	PendingExport int            `json:"pendingExports"` // exports not acked, over the registered activities

	// NotifyTopic is the stack's topic (NOTIFY_TOPIC_ARN); Notifications
	// what the function published to it, as the queue subscribed to it
	// received them: what people would have been told.
	NotifyTopic   string         `json:"notifyTopic"`
	Notifications []Notification `json:"notifications"`
	// EMF are the CloudWatch Embedded Metric Format lines of the function's
	// output (through Sandbox.Output); Metrics each metric summed over them.
	EMF     []json.RawMessage `json:"emf"`
	Metrics []MetricSum       `json:"metrics"`
}

// QueuedMessage is a message on the FIFO import queue.
type QueuedMessage struct {
	GroupID string          `json:"groupId"`
	DedupID string          `json:"dedupId"`
	Key     string          `json:"key,omitempty"`     // a file message's object key, decoded
	Release string          `json:"release,omitempty"` // a release request's route
	Body    json.RawMessage `json:"body"`
}

// FnOMessage is a message enqueued in F&O during the invoke.
type FnOMessage struct {
	ID         string `json:"id"`
	ActivityID string `json:"activityId"`
	Entity     string `json:"entity,omitempty"`
	Company    string `json:"company,omitempty"`
	ExternalID string `json:"externalId"`
	Size       int64  `json:"size"`
	Status     string `json:"status"`
}

// AckedExport is an export acknowledged during the invoke.
type AckedExport struct {
	ActivityID    string `json:"activityId"`
	CorrelationID string `json:"correlationId"`
}

// Report compares the sandbox with the snapshot Prepare took. It reads the
// import queue's messages (they stay in flight: nothing else consumes
// them before Close).
func (s *Sandbox) Report(ctx context.Context) (*Report, error) {
	if s.before == nil {
		return nil, fmt.Errorf("localrun: Report before Prepare")
	}
	r := &Report{Bucket: s.Stack.Bucket, ImportQueue: path.Base(s.Stack.ImportURL), Created: []string{}, Updated: []string{},
		Removed: []string{}, Queued: []QueuedMessage{}, Endpoints: map[string]int{}, FnOMessages: []FnOMessage{},
		AckedExports: []AckedExport{}}
	after, err := listObjects(ctx, s.s3, s.Stack.Bucket)
	if err != nil {
		return nil, err
	}
	for _, k := range slices.Sorted(maps.Keys(after)) {
		old, had := s.before.keys[k]
		switch {
		case !had:
			r.Created = append(r.Created, k)
		case old != after[k]:
			r.Updated = append(r.Updated, k)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(s.before.keys)) {
		if _, ok := after[k]; !ok {
			r.Removed = append(r.Removed, k)
		}
	}
	for _, k := range r.Created {
		if !strings.HasSuffix(k, ".reason.json") && !strings.HasSuffix(k, ".result.json") {
			continue
		}
		out, err := s.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.Stack.Bucket, Key: aws.String(k)})
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", k, err)
		}
		b, err := io.ReadAll(io.LimitReader(out.Body, 1<<20))
		out.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", k, err)
		}
		if json.Valid(b) {
			if r.Documents == nil {
				r.Documents = map[string]json.RawMessage{}
			}
			r.Documents[k] = b
		}
	}

	if r.Queued, err = s.drainImportQueue(ctx); err != nil {
		return nil, err
	}

	r.FnORequests = s.emu.TotalRequests() - s.before.total
	for _, e := range endpoints {
		if n := s.emu.Requests(e) - s.before.requests[e]; n > 0 {
			r.Endpoints[e] = n
		}
	}
	for _, m := range s.emu.Messages() {
		if s.before.messages[m.ID] {
			continue
		}
		r.FnOMessages = append(r.FnOMessages, FnOMessage{ID: m.ID, ActivityID: m.ActivityID, Entity: m.Entity,
			Company: m.Company, ExternalID: m.ExternalID, Size: m.Size, Status: m.Status})
	}
	for _, a := range s.activities {
		acked := s.emu.Acked(a)
		for _, c := range acked[min(s.before.acked[a], len(acked)):] {
			r.AckedExports = append(r.AckedExports, AckedExport{ActivityID: a, CorrelationID: c})
		}
		r.PendingExport += s.emu.Pending(a)
	}

	r.NotifyTopic = s.Stack.NotifyTopicARN
	if r.Notifications, err = ReadNotifications(ctx, s.sqs, s.Stack.NotifyQueueURL); err != nil {
		return nil, err
	}
	r.EMF = []json.RawMessage{}
	if s.output != nil {
		r.EMF = s.output.emf()
	}
	r.Metrics = SumEMF(r.EMF)
	return r, nil
}

// Output is where the function's output (stdout and stderr) goes: it
// passes everything on to w and keeps the EMF lines for Report. Without
// it, Report has no metrics.
func (s *Sandbox) Output(w io.Writer) io.Writer {
	s.output = &emfTee{w: w}
	return s.output
}

// drainImportQueue receives every message on the import queue, leaving
// them in flight.
func (s *Sandbox) drainImportQueue(ctx context.Context) ([]QueuedMessage, error) {
	out := []QueuedMessage{}
	for range 50 {
		res, err := s.sqs.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl: &s.Stack.ImportURL, MaxNumberOfMessages: 10, VisibilityTimeout: 300,
			MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameAll},
		})
		if err != nil {
			return nil, fmt.Errorf("read the import queue: %w", err)
		}
		if len(res.Messages) == 0 {
			break
		}
		for _, m := range res.Messages {
			q := QueuedMessage{GroupID: m.Attributes["MessageGroupId"], DedupID: m.Attributes["MessageDeduplicationId"]}
			body := aws.ToString(m.Body)
			if msg, err := importmsg.Decode([]byte(body)); err == nil && msg.File != nil {
				q.Key = msg.File.Key
			} else if err == nil {
				q.Release = msg.Release.Route
			}
			if json.Valid([]byte(body)) {
				q.Body = json.RawMessage(body)
			} else {
				q.Body, _ = json.Marshal(body)
			}
			out = append(out, q)
		}
	}
	return out, nil
}

// Print writes the report for people. Keys under _state/ (markers, ledger)
// are counted per folder rather than listed.
func (r *Report) Print(w io.Writer) {
	fmt.Fprintln(w, "── what the invoke changed on the local stand-ins")
	state := map[string][3]int{}
	list := func(sign string, keys []string, i int) {
		for _, k := range keys {
			if strings.HasPrefix(k, "_state/") {
				dir := path.Dir(k)
				if strings.HasPrefix(k, "_state/ledger/") {
					dir = "_state/ledger"
				}
				c := state[dir]
				c[i]++
				state[dir] = c
				continue
			}
			fmt.Fprintf(w, "    %s %s\n", sign, k)
			if doc, ok := r.Documents[k]; ok {
				fmt.Fprintf(w, "        %s\n", docSummary(doc))
			}
		}
	}
	fmt.Fprintf(w, "  S3 s3://%s: %d created, %d rewritten, %d removed\n", r.Bucket, len(r.Created), len(r.Updated), len(r.Removed))
	list("+", r.Created, 0)
	list("~", r.Updated, 1)
	list("-", r.Removed, 2)
	for _, dir := range slices.Sorted(maps.Keys(state)) {
		c := state[dir]
		var parts []string
		for i, sign := range []string{"+", "~", "-"} {
			if c[i] > 0 {
				parts = append(parts, fmt.Sprintf("%s%d", sign, c[i]))
			}
		}
		fmt.Fprintf(w, "    %s/: %s\n", dir, strings.Join(parts, " "))
	}

	fmt.Fprintf(w, "  SQS %s: %d message(s) sent\n", r.ImportQueue, len(r.Queued))
	for _, q := range r.Queued {
		if q.Release != "" {
			fmt.Fprintf(w, "    group %s: release request for route %s (the enqueue function's pass sends its files in order)\n", q.GroupID, q.Release)
			continue
		}
		fmt.Fprintf(w, "    group %s: %s\n", q.GroupID, q.Key)
	}

	var calls []string
	for _, e := range slices.Sorted(maps.Keys(r.Endpoints)) {
		calls = append(calls, fmt.Sprintf("%s %d", e, r.Endpoints[e]))
	}
	fmt.Fprintf(w, "  F&O: %d request(s) to F&O", r.FnORequests)
	if len(calls) > 0 {
		fmt.Fprintf(w, " (by endpoint, Entra and blob storage included: %s)", strings.Join(calls, ", "))
	}
	fmt.Fprintln(w)
	for _, m := range r.FnOMessages {
		what := m.Entity
		if what == "" {
			what = "package"
		}
		fmt.Fprintf(w, "    enqueued %s (%d bytes) as message %s: activity %s, %s, company %s, status %s\n",
			m.ExternalID, m.Size, m.ID, m.ActivityID, what, m.Company, m.Status)
	}
	for _, a := range r.AckedExports {
		fmt.Fprintf(w, "    export %s of activity %s acknowledged\n", a.CorrelationID, a.ActivityID)
	}
	if r.PendingExport > 0 {
		fmt.Fprintf(w, "    %d export(s) still waiting in F&O\n", r.PendingExport)
	}

	fmt.Fprintf(w, "  SNS %s: %d notification(s) published (what people would have been told, read off a subscribed queue)\n",
		path.Base(strings.ReplaceAll(r.NotifyTopic, ":", "/")), len(r.Notifications))
	for _, n := range r.Notifications {
		printNotification(w, "    ", n, true)
	}
	fmt.Fprintf(w, "  Metrics: %d EMF line(s) in the function's output", len(r.EMF))
	if len(r.Metrics) == 0 {
		fmt.Fprintln(w)
		return
	}
	fmt.Fprintln(w, ", each metric summed:")
	printMetrics(w, "    ", r.Metrics)
}

// docSummary is the gist of a reason or result document.
func docSummary(doc json.RawMessage) string {
	var d map[string]any
	if json.Unmarshal(doc, &d) != nil {
		return ""
	}
	var parts []string
	for _, k := range []string{"reason", "status", "detail", "message"} {
		if v, ok := d[k].(string); ok && v != "" {
			if len(v) > 120 {
				v = v[:120] + "…"
			}
			parts = append(parts, k+": "+v)
		}
	}
	return strings.Join(parts, "; ")
}
