package localrun

import (
	"archive/zip"
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/scheduler"
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
// SNS, Secrets Manager and EventBridge Scheduler, the F&O emulator, and the
// real built functions behind Runtime API hosts, wired as template.yaml
// wires them and going by the configuration document. While it runs it
// operates the stack through the operator's tool (internal/ops/cli, as
// s3fno): it applies the document, runs export jobs now, adds a route and
// a job, pauses a route while files arrive and resumes it. Its summary says
// where each file and export ended, what people were told and what the
// functions counted, and ends with s3fno status.
type Demo struct {
	Repo    string        // the repository root (for building functions)
	Dir     string        // scratch: built bootstraps, function logs, env.json, the documents
	Timeout time.Duration // how long the files may take to settle
	Out     io.Writer

	secrets       []string // the client secret and every token issued, once Run returns
	notifications []Notification
	metrics       []MetricSum
	problems      []string // found while operating
	envFile       string
	mu            sync.Mutex // Out, shared with the loops
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

// demoRun is what one Run works with.
type demoRun struct {
	cfg   aws.Config
	stack *Stack
	emu   *d365test.Emulator
	s3    *s3.Client
	loops *Loops
	// arns are the functions moto's Lambda registered, by logical ID.
	arns map[string]string
}

// Run executes the demo and returns an error unless every file and export
// ended where it should.
func (d *Demo) Run(ctx context.Context) error {
	d.say("▶ starting moto_server (S3, SQS, SNS, Secrets Manager, EventBridge Scheduler) and the F&O emulator")
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
	r := &demoRun{cfg: motoConfig(motoSrv.URL), emu: emu}
	r.s3 = newS3Client(r.cfg)
	fns, err := d.setUp(ctx, motoSrv, r)
	if err != nil {
		return err
	}
	defer fns.Close()
	r.loops = demoLoops(r, fns, d.say)
	r.loops.Start(ctx)
	defer r.loops.Stop()

	exports, err := d.operate(ctx, r)
	if err != nil {
		return err
	}
	if err := d.waitSettled(ctx, r); err != nil {
		return err
	}
	r.loops.Stop()
	return d.summarize(ctx, r.s3, sqs.NewFromConfig(r.cfg), r.stack, emu, exports)
}

// setUp provisions the stack, registers the functions' placeholders in
// moto, writes the env file, builds and starts the functions and stores
// the starting configuration document with s3fno config apply.
func (d *Demo) setUp(ctx context.Context, m *moto.Server, r *demoRun) (*Functions, error) {
	var err error
	r.stack, err = Provision(ctx, r.cfg, StackSpec{Name: "demo", ClientSecret: r.emu.ClientSecret(), VisibilityTimeout: 4, MaxReceiveCount: 3})
	if err != nil {
		return nil, err
	}
	d.say("  bucket %s, queues %s and %s, notification topic %s (queue %s subscribed), schedule group %s", r.stack.Bucket,
		filepath.Base(r.stack.ArrivalsURL), filepath.Base(r.stack.ImportURL), topicName(r.stack.NotifyTopicARN),
		filepath.Base(r.stack.NotifyQueueURL), r.stack.ScheduleGroup)
	ca, err := d.prepareDir(r.emu)
	if err != nil {
		return nil, err
	}
	specs := demoFunctions(demoEnv(m, r.emu, r.stack, ca))
	ids := make([]string, len(specs))
	for i, s := range specs {
		ids[i] = s.LogicalID
	}
	if r.arns, err = registerFunctions(ctx, r.cfg, r.stack, ids); err != nil {
		return nil, err
	}
	d.envFile = filepath.Join(d.Dir, "env.json")
	if err := writeEnvFile(d.envFile, specs[0].Env, r.stack, r.arns); err != nil {
		return nil, err
	}
	d.say("▶ building the functions and starting them behind Runtime API hosts (logs in %s)", filepath.Join(d.Dir, "logs"))
	fns, err := StartFunctions(ctx, d.Repo, d.Dir, specs)
	if err != nil {
		return nil, err
	}
	d.say("▶ the routes and export jobs are a configuration document, stored with the operator's tool "+
		"(each s3fno command below runs with --env-file %s)", d.envFile)
	if err := d.applyConfig(ctx, "config.json", demoConfig(false)); err != nil {
		fns.Close()
		return nil, err
	}
	return fns, nil
}

func (d *Demo) say(format string, a ...any) {
	d.mu.Lock()
	defer d.mu.Unlock()
	fmt.Fprintf(d.Out, format+"\n", a...)
}

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
	emu.SetExportPackage(vendorMasterProject, vendorMasterPackage)
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

// demoEnv is the functions' environment: the stand-ins, the configuration
// document looked at every second, and a compressed clock (young imports
// checked every second, a sweep after 20 s).
func demoEnv(m *moto.Server, emu *d365test.Emulator, stack *Stack, caBundle string) map[string]string {
	env := standInEnv(m, emu, stack, caBundle)
	env["CONFIG_REFRESH"] = demoConfigRefresh.String()
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

// demoLoops play Lambda's mappings, the poller's schedule (every 2 s),
// the export schedules of the stack's group (looked at every second) and
// F&O's batch job.
func demoLoops(r *demoRun, fns *Functions, say func(string, ...any)) *Loops {
	return &Loops{Mappings: demoMappings(r.cfg, r.stack, fns),
		Poller: &Schedule{Name: "poller schedule", Every: 2 * time.Second, Input: []byte(`{"task":"poll"}`), Function: fns.Invoker("PollerFunction")},
		Exports: &Scheduler{Client: scheduler.NewFromConfig(r.cfg), Group: r.stack.ScheduleGroup, Function: fns.Invoker("DequeueFunction"),
			FunctionARN: r.arns["DequeueFunction"]},
		ExportsEvery: time.Second, Batch: r.emu.Tick, Say: say}
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

// waitSettled waits, printing each key as it lands, until every dropped
// file has left inbound/ and no export waits in F&O, or until d.Timeout.
func (d *Demo) waitSettled(ctx context.Context, r *demoRun) error {
	d.say("▶ running until every file and export has ended somewhere")
	deadline := time.Now().Add(d.Timeout)
	seen := map[string]bool{}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		keys, err := listKeys(ctx, r.s3, r.stack.Bucket)
		if err != nil {
			return err
		}
		for _, k := range keys {
			if !seen[k] && !strings.HasPrefix(k, "_state/") && !strings.HasPrefix(k, "inbound/") && !strings.HasPrefix(k, "_config/") {
				seen[k] = true
				d.say("  + %s", k)
			}
		}
		if settled(keys) && r.emu.Pending(actExportCSV) == 0 && r.emu.Pending(actExportPkg) == 0 && packageExportLanded(keys) != "" {
			return nil
		}
		if time.Now().After(deadline) {
			d.say("  ! not settled after %s", d.Timeout)
			return nil
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// vendorMasterProject is the data project the demo's vendor-master job
// exports through the package API, and vendorMasterPackage what F&O
// exports of it.
const vendorMasterProject = "Vendor master"

var vendorMasterPackage = d365test.NewPackage(vendorMasterProject,
	d365test.PackageEntity{Name: "Vendors V2", Data: []byte("VENDORACCOUNTNUMBER,NAME\r\nUS-101,Fabrikam\r\nUS-102,Contoso\r\n")})

// packageExportLanded is the key the vendor-master job's package landed
// at, or "".
func packageExportLanded(keys []string) string {
	for _, k := range keys {
		if strings.HasPrefix(k, "outbound/vendor-master/") && strings.HasSuffix(k, "-vendor-master.zip") {
			return k
		}
	}
	return ""
}

// settled: every dropped file has left inbound/.
func settled(keys []string) bool {
	for _, f := range allDemoFiles() {
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
