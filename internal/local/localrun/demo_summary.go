package localrun

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/fno-bridge/s3-fno/pkg/d365/d365test"
)

// The demo's summary: where each file and export ended, the order the
// burst reached F&O in, what people were told and what the functions
// counted, each checked against what the demo expects.

// summarize prints where each file and export ended and checks it against
// what the demo expects.
func (d *Demo) summarize(ctx context.Context, c *s3.Client, q *sqs.Client, stack *Stack, emu *d365test.Emulator, exports map[string]string) error {
	bucket := stack.Bucket
	keys, err := listKeys(ctx, c, bucket)
	if err != nil {
		return err
	}
	problems := d.summarizeImports(ctx, c, bucket, keys)
	problems = append(problems, d.summarizeOrder(emu)...)
	problems = append(problems, d.summarizeExports(emu, exports, keys)...)
	problems = append(problems, d.summarizeUnpacked(keys)...)
	more, err := d.summarizeNotifications(ctx, q, stack)
	if err != nil {
		return err
	}
	problems = append(problems, more...)
	if more, err = d.summarizeMetrics(); err != nil {
		return err
	}
	problems = append(problems, more...)
	problems = append(problems, d.problems...)
	fmt.Fprintf(d.Out, "\n  F&O calls: %d (token requests %d); function logs in %s\n", emu.TotalRequests(), emu.TokenRequests(), filepath.Join(d.Dir, "logs"))
	fmt.Fprintln(d.Out, "\n══ The stack now, as the operator's tool shows it")
	if code, _ := d.s3fno(ctx, true, "status"); code != 0 {
		problems = append(problems, fmt.Sprintf("s3fno status: exit %d", code))
	}
	if len(problems) > 0 {
		fmt.Fprintln(d.Out, "\n✗ the demo did not end as expected:")
		for _, p := range problems {
			fmt.Fprintln(d.Out, "  - "+p)
		}
		return fmt.Errorf("%d problem(s)", len(problems))
	}
	fmt.Fprintln(d.Out, "\n✓ every file and export ended where it should, and people were told of each failed and rejected file once")
	return nil
}

// summarizeImports prints the folder each dropped file ended in, with F&O's
// verdict, and returns the files that did not end where expected.
func (d *Demo) summarizeImports(ctx context.Context, c *s3.Client, bucket string, keys []string) (problems []string) {
	fmt.Fprintln(d.Out, "\n══ Imports")
	tw := tabwriter.NewWriter(d.Out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FILE\tEXPECTED\tENDED IN\tF&O STATUS\tERRORS\t")
	for _, f := range allDemoFiles() {
		folder, where := settledFolder(f, keys)
		status, nerr := "", ""
		if where != "" {
			status, nerr = resultSummary(ctx, c, bucket, where, keys)
		}
		if folder != f.Expected {
			problems = append(problems, fmt.Sprintf("%s ended in %s, expected %s", f.Key, folder, f.Expected))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t\n", f.Key, f.Expected, folder, status, nerr)
	}
	tw.Flush()
	return problems
}

// summarizeOrder prints the order in which the burst's files reached F&O
// and returns a problem unless it is the drop order.
func (d *Demo) summarizeOrder(emu *d365test.Emulator) (problems []string) {
	var got, want []string
	for _, m := range emu.Messages() {
		if m.ActivityID == actJournals {
			got = append(got, filepath.Base(m.ExternalID))
		}
	}
	for _, f := range burstFiles {
		want = append(want, filepath.Base(f.Key))
	}
	fmt.Fprintln(d.Out, "\n══ Drop order (the burst waited while journals was paused; its notifications reached the router shuffled)")
	fmt.Fprintf(d.Out, "  dropped:          %s\n  reached F&O:      %s\n", strings.Join(want, " "), strings.Join(got, " "))
	if !slices.Equal(got, want) {
		problems = append(problems, "the journal burst reached F&O out of drop order: "+strings.Join(got, " "))
	}
	return problems
}

// settledFolder is the folder (processed, failed or rejected) a dropped
// file ended in and its key there, or "inbound (still in flight)" and "".
func settledFolder(f droppedFile, keys []string) (folder, key string) {
	name := filepath.Base(f.Key)
	folder = "inbound (still in flight)"
	for _, k := range keys {
		if filepath.Base(k) != name || strings.HasPrefix(k, "inbound/") {
			continue
		}
		top := strings.SplitN(k, "/", 2)[0]
		if top == "processed" || top == "failed" || top == "rejected" {
			folder, key = top, k
		}
	}
	return folder, key
}

// summarizeExports prints where each export landed and whether F&O had it
// acknowledged, and returns those that did not land or were not.
func (d *Demo) summarizeExports(emu *d365test.Emulator, exports map[string]string, keys []string) (problems []string) {
	fmt.Fprintln(d.Out, "\n══ Exports")
	tw := tabwriter.NewWriter(d.Out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "JOB\tCORRELATION ID\tLANDED AT\tACKED\t")
	acked := map[string]bool{}
	for _, a := range append(emu.Acked(actExportCSV), emu.Acked(actExportPkg)...) {
		acked[a] = true
	}
	for _, corr := range slices.Sorted(maps.Keys(exports)) {
		landed := ""
		for _, k := range keys {
			if strings.HasPrefix(k, "outbound/"+exports[corr]+"/") && strings.Contains(k, corr) && !strings.HasSuffix(k, "/") {
				if landed == "" || len(k) < len(landed) {
					landed = k
				}
			}
		}
		if landed == "" {
			problems = append(problems, fmt.Sprintf("export %s of %s did not land", corr, exports[corr]))
		}
		if !acked[corr] {
			problems = append(problems, fmt.Sprintf("export %s of %s was not acknowledged", corr, exports[corr]))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t\n", exports[corr], corr, landed, acked[corr])
	}
	// The package API export: no acknowledgement, landed once under its
	// execution ID.
	landed := packageExportLanded(keys)
	if landed == "" {
		problems = append(problems, "the package export of vendor-master did not land")
	}
	fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t\n", "vendor-master", "(package API)", landed, "-")
	tw.Flush()
	return problems
}

// summarizeUnpacked prints the entity files the vendor package unpacked
// into, and a problem unless there are two.
func (d *Demo) summarizeUnpacked(keys []string) (problems []string) {
	var unpacked []string
	for _, k := range keys {
		if strings.HasPrefix(k, "outbound/vendor-package/") && strings.HasSuffix(k, ".csv") {
			unpacked = append(unpacked, k)
		}
	}
	fmt.Fprintf(d.Out, "  unpacked entity files: %d\n", len(unpacked))
	for _, k := range unpacked {
		fmt.Fprintf(d.Out, "    %s\n", k)
	}
	if len(unpacked) != 2 {
		problems = append(problems, fmt.Sprintf("the vendor package should unpack into 2 entity files, found %d", len(unpacked)))
	}
	return problems
}

// summarizeNotifications prints what the functions published to the
// stack's topic (read off the queue subscribed to it) and returns a problem
// unless it is one notification per failed or rejected file, of its kind
// and naming it, and nothing else.
func (d *Demo) summarizeNotifications(ctx context.Context, q *sqs.Client, stack *Stack) (problems []string, err error) {
	got, err := ReadNotifications(ctx, q, stack.NotifyQueueURL)
	if err != nil {
		return nil, err
	}
	d.notifications = got
	fmt.Fprintf(d.Out, "\n══ Notifications (SNS topic %s, read off the subscribed queue %s): %d\n",
		topicName(stack.NotifyTopicARN), filepath.Base(stack.NotifyQueueURL), len(got))
	for _, n := range got {
		printNotification(d.Out, "  ", n, false)
	}
	expected := map[int]bool{}
	for _, f := range allDemoFiles() {
		if f.Expected != "failed" && f.Expected != "rejected" {
			continue
		}
		var of []int
		for i, n := range got {
			if n.Field("Dropped as") == f.Key {
				of = append(of, i)
				expected[i] = true
			}
		}
		switch {
		case len(of) != 1:
			problems = append(problems, fmt.Sprintf("%d notifications of %s, want exactly one (%s)", len(of), f.Key, f.Expected))
		case got[of[0]].Kind != f.Expected:
			problems = append(problems, fmt.Sprintf("the notification of %s is %q, want %s: %s", f.Key, got[of[0]].Kind, f.Expected, got[of[0]].Subject))
		case f.Expected == "failed" && got[of[0]].Field("F&O status") != "ProcessedWithErrors":
			problems = append(problems, fmt.Sprintf("the notification of %s gives F&O status %q, want ProcessedWithErrors", f.Key, got[of[0]].Field("F&O status")))
		case f.Expected == "failed" && got[of[0]].Field("First error rows") == "":
			problems = append(problems, fmt.Sprintf("the notification of %s shows no error rows", f.Key))
		case f.Expected == "rejected" && got[of[0]].Field("Reason") == "":
			problems = append(problems, fmt.Sprintf("the notification of %s gives no reason", f.Key))
		}
		if len(of) > 0 && !strings.HasPrefix(got[of[0]].Subject, "["+stack.Name+"] ") {
			problems = append(problems, fmt.Sprintf("the subject %q does not start with [%s]", got[of[0]].Subject, stack.Name))
		}
	}
	for i, n := range got {
		if !expected[i] {
			problems = append(problems, "a notification the demo's files do not call for: "+n.Subject)
		}
	}
	return problems, nil
}

// summarizeMetrics prints each metric the functions wrote as EMF lines in
// their logs, summed, and returns a problem unless the file counts agree
// with where the files ended.
func (d *Demo) summarizeMetrics() (problems []string, err error) {
	logs, err := filepath.Glob(filepath.Join(d.Dir, "logs", "*.log"))
	if err != nil {
		return nil, err
	}
	var lines []json.RawMessage
	for _, name := range logs {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		more, err := EMFLines(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		lines = append(lines, more...)
	}
	sums := SumEMF(lines)
	d.metrics = sums
	fmt.Fprintf(d.Out, "\n══ Metrics (%d EMF lines in the function logs): SUM adds up every line's value, MAX is the largest;\n"+
		"   for a level such as ImportsInFlight or OldestImportAge, which each poller run sets, read MAX\n", len(lines))
	printMetrics(d.Out, "  ", sums)
	want := map[string]int{}
	for _, f := range allDemoFiles() {
		want[map[string]string{"processed": "FilesProcessed", "failed": "FilesFailed", "rejected": "FilesRejected"}[f.Expected]]++
	}
	want["ExportsLanded"] = 4
	for _, name := range slices.Sorted(maps.Keys(want)) {
		m, _ := SumMetric(sums, name)
		if int(m.Sum) != want[name] {
			problems = append(problems, fmt.Sprintf("metric %s sums to %s, want %d", name, num(m.Sum), want[name]))
		}
	}
	return problems, nil
}

// topicName is the name at the end of a topic's ARN.
func topicName(arn string) string {
	return arn[strings.LastIndex(arn, ":")+1:]
}

// resultSummary reads the result (or reason) document beside a settled
// file: F&O's status and the number of execution errors.
func resultSummary(ctx context.Context, c *s3.Client, bucket, key string, keys []string) (status, nerrors string) {
	for _, suffix := range []string{".result.json", ".reason.json"} {
		doc := key + suffix
		found := false
		for _, k := range keys {
			found = found || k == doc
		}
		if !found {
			continue
		}
		out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: &bucket, Key: &doc})
		if err != nil {
			return "?", ""
		}
		var v map[string]any
		json.NewDecoder(out.Body).Decode(&v)
		out.Body.Close()
		if s, ok := v["status"].(string); ok {
			status = s
		} else if r, ok := v["reason"].(string); ok {
			status = truncate(r, 40)
		}
		if rows, ok := v["errors"].([]any); ok {
			nerrors = fmt.Sprint(len(rows))
		}
		return status, nerrors
	}
	return "", ""
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
