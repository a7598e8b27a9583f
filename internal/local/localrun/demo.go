package localrun

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/fno-bridge/s3-fno/internal/local/moto"
	"github.com/fno-bridge/s3-fno/pkg/d365/d365test"
)

// The demo's F&O jobs.
const (
	actCustomers = "3f1b2c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"
	actVendors   = "7a6b5c4d-3e2f-4109-8a7b-6c5d4e3f2a1b"
	actProducts  = "c0ffee00-1234-4abc-9def-0123456789ab"
	actJournals  = "0a0b0c0d-1111-4222-8333-444455556666"
	actExportCSV = "e1e2e3e4-0000-4000-8000-000000000001"
	actExportPkg = "e1e2e3e4-0000-4000-8000-000000000002"
)

// droppedFile is one file the demo drops, with the folder it must end in.
type droppedFile struct {
	Key      string
	Body     string
	Expected string // processed, failed or rejected
}

var demoFiles = []droppedFile{
	{"inbound/customers/customer-groups-001.csv", "CUSTGROUP,NAME\r\n10,Wholesale\r\n", "processed"},
	{"inbound/customers/customer-groups-002.csv", "CUSTGROUP,NAME\r\n20,Retail\r\n", "processed"},
	{"inbound/customers/customer-groups-003.csv", "CUSTGROUP,NAME\r\n30,Intercompany\r\n", "processed"},
	{"inbound/vendors/vendor groups 2026-11.csv", "VENDGROUP,NAME\r\nV10,Domestic\r\n", "processed"},
	{"inbound/vendors/vendor-groups-bad.csv", "VENDGROUP,NAME\r\nV99,\r\nV98,Unknown currency\r\n", "failed"},
	{"inbound/products/released-products-für-2026.csv", "ITEMNUMBER,NAME\r\nA0001,Widget\r\n", "processed"},
	{"inbound/unknown-route/stray.csv", "nobody routes this\r\n", "rejected"},
	{"inbound/customers/empty.csv", "", "rejected"},
}

// burstFiles are one route's files dropped a quarter of a second apart, a
// burst whose notifications the demo hands to the router shuffled, one of
// them twice: they reach F&O in drop order all the same.
var burstFiles = []droppedFile{
	{"inbound/journals/journal-0001.csv", "JOURNAL,LINE,AMOUNT\r\nJ1,1,100.00\r\n", "processed"},
	{"inbound/journals/journal-0002.csv", "JOURNAL,LINE,AMOUNT\r\nJ2,1,-40.00\r\n", "processed"},
	{"inbound/journals/journal-0003.csv", "JOURNAL,LINE,AMOUNT\r\nJ3,1,12.50\r\n", "processed"},
	{"inbound/journals/journal-0004.csv", "JOURNAL,LINE,AMOUNT\r\nJ4,1,7.25\r\n", "processed"},
	{"inbound/journals/journal-0005.csv", "JOURNAL,LINE,AMOUNT\r\nJ5,1,-3.00\r\n", "processed"},
	{"inbound/journals/journal-0006.csv", "JOURNAL,LINE,AMOUNT\r\nJ6,1,99.99\r\n", "processed"},
}

// Demo runs the whole pipeline on local stand-ins: moto_server for S3, SQS,
// SNS and Secrets Manager, the F&O emulator, and the real built functions
// behind Runtime API hosts, wired as template.yaml wires them. Its summary
// says where each file and export ended, what people were told and what
// the functions counted.
type Demo struct {
	Repo    string        // the repository root (for building functions)
	Dir     string        // scratch: built bootstraps and function logs
	Timeout time.Duration // how long the files may take to settle
	Out     io.Writer

	secrets       []string // the client secret and every token issued, once Run returns
	notifications []Notification
	metrics       []MetricSum
}

// Secrets returns, after Run, the client secret and every bearer token the
// run used: none of them may appear in any log.
func (d *Demo) Secrets() []string { return d.secrets }

// Notifications returns, after Run, what the functions published to the
// stack's topic, as its subscribed queue received it.
func (d *Demo) Notifications() []Notification { return d.notifications }

// Metrics returns, after Run, each metric of the EMF lines in the function
// logs, summed.
func (d *Demo) Metrics() []MetricSum { return d.metrics }

// Run executes the demo and returns an error unless every file and export
// ended where it should.
func (d *Demo) Run(ctx context.Context) error {
	d.say("▶ starting moto_server (S3, SQS, SNS, Secrets Manager) and the F&O emulator")
	motoSrv, err := moto.Start(ctx, nil)
	if err != nil {
		return err
	}
	defer motoSrv.Close()
	emu, err := startDemoEmulator()
	if err != nil {
		return err
	}
	defer emu.Close()
	defer func() { d.secrets = append([]string{emu.ClientSecret()}, emu.IssuedTokens()...) }()

	cfg := motoConfig(motoSrv.URL)
	stack, err := Provision(ctx, cfg, StackSpec{Name: "demo", ClientSecret: emu.ClientSecret(), VisibilityTimeout: 4, MaxReceiveCount: 3})
	if err != nil {
		return err
	}
	d.say("  bucket %s, queues %s and %s, notification topic %s (queue %s subscribed)", stack.Bucket, filepath.Base(stack.ArrivalsURL),
		filepath.Base(stack.ImportURL), topicName(stack.NotifyTopicARN), filepath.Base(stack.NotifyQueueURL))
	ca, err := d.prepareDir(emu)
	if err != nil {
		return err
	}

	d.say("▶ building the functions and starting them behind Runtime API hosts (logs in %s)", filepath.Join(d.Dir, "logs"))
	fns, err := StartFunctions(ctx, d.Repo, d.Dir, demoFunctions(demoEnv(motoSrv, emu, stack, ca)))
	if err != nil {
		return err
	}
	defer fns.Close()

	s3c := newS3Client(cfg)
	d.say("▶ dropping %d files under inbound/ and queueing 3 exports in F&O", len(demoFiles))
	if err := d.dropFiles(ctx, s3c, stack.Bucket, demoFiles, 0); err != nil {
		return err
	}
	d.say("▶ a burst: %d journal files a quarter of a second apart, their notifications shuffled and one repeated", len(burstFiles))
	if err := d.dropFiles(ctx, s3c, stack.Bucket, burstFiles, 250*time.Millisecond); err != nil {
		return err
	}
	if err := shuffleNotifications(ctx, sqs.NewFromConfig(cfg), stack.ArrivalsURL); err != nil {
		return err
	}
	exports, err := queueDemoExports(emu)
	if err != nil {
		return err
	}

	d.say("▶ running: S3 → arrivals → router → imports.fifo → enqueue → F&O; poller and dequeue on their schedules")
	if err := d.runUntilSettled(ctx, s3c, stack.Bucket, emu, demoMappings(cfg, stack, fns), demoSchedules(fns)); err != nil {
		return err
	}
	return d.summarize(ctx, s3c, sqs.NewFromConfig(cfg), stack, emu, exports)
}

func (d *Demo) say(format string, a ...any) { fmt.Fprintf(d.Out, format+"\n", a...) }

// startDemoEmulator starts the F&O emulator with the demo's import and
// export jobs, and F&O's verdict on the bad vendor file.
func startDemoEmulator() (*d365test.Emulator, error) {
	emu, err := d365test.Start(d365test.Options{HTTPDownloadLocation: true})
	if err != nil {
		return nil, err
	}
	emu.AddActivity(actCustomers, d365test.Activity{Name: "Import customer groups", InOrder: true})
	emu.AddActivity(actVendors, d365test.Activity{Name: "Import vendor groups", InOrder: true})
	emu.AddActivity(actProducts, d365test.Activity{Name: "Import released products"})
	emu.AddActivity(actJournals, d365test.Activity{Name: "Import general journals", InOrder: true})
	emu.AddActivity(actExportCSV, d365test.Activity{Name: "Export customer groups"})
	emu.AddActivity(actExportPkg, d365test.Activity{Name: "Export vendor package", Kind: d365test.Package})
	emu.Script(d365test.Rule{ActivityID: actVendors, ExternalIDContains: "vendor-groups-bad", Outcome: d365test.Outcome{
		Status: "ProcessedWithErrors",
		Errors: []d365test.ExecutionError{
			{RecordId: "5637145326", Field: "Name", ErrorMessage: "Field 'Name' must be filled in."},
			{RecordId: "5637145327", Field: "", ErrorMessage: "Vendor group V98: the currency \"XXX\" does not exist."},
		},
		StagingErrorFile:    []byte("VENDGROUP,NAME,ERROR\r\nV99,,Field 'Name' must be filled in.\r\n"),
		TargetErrorKeysFile: []byte("RecordId\r\n5637145327\r\n"),
	}})
	return emu, nil
}

// prepareDir makes d.Dir absolute (the functions run in their bootstrap's
// folder), creates it and writes the emulator's CA certificate there.
func (d *Demo) prepareDir(emu *d365test.Emulator) (caBundle string, err error) {
	dir, err := filepath.Abs(d.Dir)
	if err != nil {
		return "", err
	}
	d.Dir = dir
	if err := os.MkdirAll(d.Dir, 0o755); err != nil {
		return "", err
	}
	return writeCABundle(d.Dir, emu)
}

// demoEnv is the functions' environment: the stand-ins, the demo's routes
// and a compressed clock (young imports checked every second, a sweep after
// 20 s).
func demoEnv(m *moto.Server, emu *d365test.Emulator, stack *Stack, caBundle string) map[string]string {
	routesJSON, _ := json.Marshal([]map[string]string{
		{"route": "customers", "activityId": actCustomers, "entity": "Customer groups", "company": "USMF", "kind": "file"},
		{"route": "vendors", "activityId": actVendors, "entity": "Vendor groups", "company": "USMF", "kind": "file"},
		{"route": "products", "activityId": actProducts, "entity": "Released products V2", "company": "USMF", "kind": "file"},
		{"route": "journals", "activityId": actJournals, "entity": "General journal", "company": "USMF", "kind": "file", "settle": "2s"},
	})
	env := standInEnv(m, emu, stack, caBundle)
	env["ROUTES"] = string(routesJSON)
	env["SWEEP_AFTER"] = "20s"
	env["STUCK_AFTER"] = "10m"
	return env
}

// demoFunctions are the template's four functions, all with env.
func demoFunctions(env map[string]string) []FunctionSpec {
	return []FunctionSpec{
		{LogicalID: "RouterFunction", Package: "./functions/router", Timeout: 30 * time.Second, Env: env},
		{LogicalID: "EnqueueFunction", Package: "./functions/enqueue", Timeout: 60 * time.Second, Env: env},
		{LogicalID: "PollerFunction", Package: "./functions/poller", Timeout: 60 * time.Second, Env: env},
		{LogicalID: "DequeueFunction", Package: "./functions/dequeue", Timeout: 60 * time.Second, Env: env},
	}
}

// demoMappings are the template's event source mappings: arrivals to the
// router, the FIFO import queue (through MotoFIFO) to the enqueue function.
func demoMappings(cfg aws.Config, stack *Stack, fns *Functions) []*SQSMapping {
	sqsc := sqs.NewFromConfig(cfg)
	return []*SQSMapping{
		{Queue: sqsc, QueueURL: stack.ArrivalsURL, QueueARN: stack.ArrivalsARN, Region: "us-east-1", BatchSize: 10, Function: fns.Invoker("RouterFunction")},
		{Queue: &MotoFIFO{Queue: sqsc, VisibilityTimeout: stack.VisibilityTimeout}, QueueURL: stack.ImportURL, QueueARN: stack.ImportARN,
			Region: "us-east-1", BatchSize: 10, Function: fns.Invoker("EnqueueFunction")},
	}
}

// demoSchedules are the template's schedules on a compressed clock: the
// poller, and one dequeue per export job.
func demoSchedules(fns *Functions) []*Schedule {
	exportJobs := []string{
		fmt.Sprintf(`{"job":"customer-groups","activityId":%q,"prefix":"outbound/customer-groups/"}`, actExportCSV),
		fmt.Sprintf(`{"job":"vendor-package","activityId":%q,"prefix":"outbound/vendor-package/","unpack":true}`, actExportPkg),
	}
	return []*Schedule{
		{Name: "poller", Every: 2 * time.Second, Input: []byte(`{"task":"poll"}`), Function: fns.Invoker("PollerFunction")},
		{Name: "export customer-groups", Every: 3 * time.Second, Input: []byte(exportJobs[0]), Function: fns.Invoker("DequeueFunction")},
		{Name: "export vendor-package", Every: 3 * time.Second, Input: []byte(exportJobs[1]), Function: fns.Invoker("DequeueFunction")},
	}
}

// dropFiles puts files under inbound/, gap apart.
func (d *Demo) dropFiles(ctx context.Context, s3c *s3.Client, bucket string, files []droppedFile, gap time.Duration) error {
	for i, f := range files {
		if i > 0 {
			time.Sleep(gap)
		}
		if _, err := s3c.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: aws.String(f.Key), Body: strings.NewReader(f.Body)}); err != nil {
			return fmt.Errorf("drop %s: %w", f.Key, err)
		}
		d.say("  dropped %s (%d bytes)", f.Key, len(f.Body))
	}
	return nil
}

// shuffleNotifications takes every notification off the arrivals queue
// and puts them back in reverse order, the first one twice, as S3's
// unordered, at-least-once delivery may hand them to the router.
func shuffleNotifications(ctx context.Context, q *sqs.Client, queueURL string) error {
	var bodies []string
	for empty := 0; empty < 2; {
		out, err := q.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &queueURL, MaxNumberOfMessages: 10, VisibilityTimeout: 60})
		if err != nil {
			return fmt.Errorf("shuffle notifications: %w", err)
		}
		if len(out.Messages) == 0 {
			empty++
			continue
		}
		for _, m := range out.Messages {
			bodies = append(bodies, aws.ToString(m.Body))
			if _, err := q.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: &queueURL, ReceiptHandle: m.ReceiptHandle}); err != nil {
				return fmt.Errorf("shuffle notifications: %w", err)
			}
		}
	}
	slices.Reverse(bodies)
	if len(bodies) > 0 {
		bodies = append(bodies, bodies[0])
	}
	for _, b := range bodies {
		if _, err := q.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &queueURL, MessageBody: aws.String(b)}); err != nil {
			return fmt.Errorf("shuffle notifications: %w", err)
		}
	}
	return nil
}

// queueDemoExports queues the demo's exports in F&O and returns their
// correlation IDs, each with its job.
func queueDemoExports(emu *d365test.Emulator) (map[string]string, error) {
	pkg, err := demoPackage()
	if err != nil {
		return nil, err
	}
	return map[string]string{
		emu.QueueExport(actExportCSV, d365test.Export{Body: []byte("CUSTGROUP,NAME\r\n10,Wholesale\r\n20,Retail\r\n"), Size: 42, FileName: "Customer groups.csv"}): "customer-groups",
		emu.QueueExport(actExportCSV, d365test.Export{Body: []byte("CUSTGROUP,NAME\r\n30,Intercompany\r\n"), Size: 34, FileName: "Customer groups.csv"}):           "customer-groups",
		emu.QueueExport(actExportPkg, d365test.Export{Body: pkg, Size: int64(len(pkg)), FileName: "Vendor package.zip"}):                                           "vendor-package",
	}, nil
}

// runUntilSettled plays, round after round, the event source mappings,
// F&O's batch job and the schedules, printing each key as it lands, until
// every dropped file has left inbound/ and no export waits in F&O, or until
// d.Timeout.
func (d *Demo) runUntilSettled(ctx context.Context, s3c *s3.Client, bucket string, emu *d365test.Emulator, mappings []*SQSMapping, schedules []*Schedule) error {
	deadline := time.Now().Add(d.Timeout)
	seen := map[string]bool{}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := d.pollMappings(ctx, mappings); err != nil {
			return err
		}
		emu.Tick() // F&O's batch job
		for _, s := range schedules {
			if fired, _, err := s.Due(ctx, time.Now()); fired && err != nil {
				d.say("  ! schedule %s: %v", s.Name, err)
			}
		}
		keys, err := listKeys(ctx, s3c, bucket)
		if err != nil {
			return err
		}
		for _, k := range keys {
			if !seen[k] && !strings.HasPrefix(k, "_state/") && !strings.HasPrefix(k, "inbound/") {
				seen[k] = true
				d.say("  + %s", k)
			}
		}
		if settled(keys) && emu.Pending(actExportCSV) == 0 && emu.Pending(actExportPkg) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			d.say("  ! not settled after %s", d.Timeout)
			return nil
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// pollMappings polls each mapping once and says what failed.
func (d *Demo) pollMappings(ctx context.Context, mappings []*SQSMapping) error {
	for _, m := range mappings {
		res, err := m.PollOnce(ctx)
		if err != nil {
			return err
		}
		if res.Err != nil {
			d.say("  ! %s batch of %d failed: %v", filepath.Base(m.QueueURL), res.Delivered, res.Err)
		} else if res.Failed > 0 {
			d.say("  ! %s: %d of %d records returned for retry", filepath.Base(m.QueueURL), res.Failed, res.Delivered)
		}
	}
	return nil
}

// settled: every dropped file has left inbound/.
func settled(keys []string) bool {
	for _, f := range slices.Concat(demoFiles, burstFiles) {
		if slices.Contains(keys, f.Key) {
			return false
		}
	}
	return true
}

// listKeys returns every key in bucket, sorted.
func listKeys(ctx context.Context, c *s3.Client, bucket string) ([]string, error) {
	objs, err := listObjects(ctx, c, bucket)
	if err != nil {
		return nil, err
	}
	return slices.Sorted(maps.Keys(objs)), nil
}

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
	fmt.Fprintf(d.Out, "\n  F&O calls: %d (token requests %d); function logs in %s\n", emu.TotalRequests(), emu.TokenRequests(), filepath.Join(d.Dir, "logs"))
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
	for _, f := range slices.Concat(demoFiles, burstFiles) {
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
	fmt.Fprintln(d.Out, "\n══ Drop order (the burst's notifications reached the router shuffled)")
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
	for _, f := range slices.Concat(demoFiles, burstFiles) {
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
	for _, f := range slices.Concat(demoFiles, burstFiles) {
		want[map[string]string{"processed": "FilesProcessed", "failed": "FilesFailed", "rejected": "FilesRejected"}[f.Expected]]++
	}
	want["ExportsLanded"] = 3
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

// demoPackage is a small data package with two entity files, as F&O
// exports them.
func demoPackage() ([]byte, error) {
	var buf bytes.Buffer
	z := zip.NewWriter(&buf)
	files := []struct{ name, body string }{
		{"Manifest.xml", `<?xml version="1.0" encoding="utf-8"?>
<DataManagementPackageManifest xmlns:i="http://www.w3.org/2001/XMLSchema-instance" xmlns="http://schemas.microsoft.com/dynamics/2015/01/DataManagement">
  <DefinitionGroupName>Vendor package</DefinitionGroupName>
  <PackageEntityList>
    <DataManagementPackageEntityData><EntityName>Vendor groups</EntityName><InputFilePath>Vendor groups.csv</InputFilePath><SourceFormat>CSV-Unicode</SourceFormat></DataManagementPackageEntityData>
    <DataManagementPackageEntityData><EntityName>Vendors V2</EntityName><InputFilePath>Vendors V2.csv</InputFilePath><SourceFormat>CSV-Unicode</SourceFormat></DataManagementPackageEntityData>
  </PackageEntityList>
</DataManagementPackageManifest>`},
		{"PackageHeader.xml", `<?xml version="1.0" encoding="utf-8"?>
<DataManagementPackageHeader xmlns:i="http://www.w3.org/2001/XMLSchema-instance" xmlns="http://schemas.microsoft.com/dynamics/2015/01/DataManagement">
  <Description>Vendor package</Description><ManifestType>Microsoft.Dynamics.AX.Framework.Tools.DataManagement.Serialization.DataManagementPackageManifest</ManifestType>
  <PackageType>DefinitionGroup</PackageType><PackageVersion>1</PackageVersion>
</DataManagementPackageHeader>`},
		{"Vendor groups.csv", "VENDGROUP,NAME\r\nV10,Domestic\r\n"},
		{"Vendors V2.csv", "VENDORACCOUNTNUMBER,NAME\r\nUS-101,Fabrikam\r\n"},
	}
	for _, f := range files {
		w, err := z.Create(f.name)
		if err != nil {
			return nil, err
		}
		io.WriteString(w, f.body)
	}
	if err := z.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
