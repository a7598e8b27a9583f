package localrun

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/fno-bridge/s3-fno/internal/ops/cli"
	"github.com/fno-bridge/s3-fno/internal/ops/status"
	"github.com/fno-bridge/s3-fno/internal/shared/layout"
	"github.com/fno-bridge/s3-fno/pkg/d365/d365test"
)

// The demo's operations, each through the operator's tool as a person
// would run it: the configuration document, export jobs run now, a route
// and a job added, a route paused while files arrive and resumed.

// demoConfigRefresh is the functions' CONFIG_REFRESH in the demo.
const demoConfigRefresh = time.Second

// packageFile is the data package the demo imports through its dataProject
// route, added while it runs.
var packageFile = droppedFile{"inbound/opening/opening-balances.zip", string(d365test.NewPackage("Opening balances",
	d365test.PackageEntity{Name: "Main accounts", Data: []byte("MAINACCOUNTID,NAME\r\n110110,Bank\r\n")},
	d365test.PackageEntity{Name: "General journal", Data: []byte("JOURNAL,ACCOUNT,AMOUNT\r\nOB1,110110,5000.00\r\n")})), "processed"}

// templateFile is a plain file the demo imports through its dataProject
// route groups, whose package template wraps it into a package on the way.
var templateFile = droppedFile{"inbound/groups/customer-groups-2027.csv", "CUSTOMERGROUPID,DESCRIPTION\r\nCG27,Customers of 2027\r\n", "processed"}

// demoTemplate is the package template of the route groups.
const demoTemplate = "customer-groups"

// allDemoFiles are the files the demo drops, the packages included.
func allDemoFiles() []droppedFile {
	return slices.Concat(demoFiles, []droppedFile{packageFile, templateFile}, burstFiles)
}

// demoConfig is the demo's configuration document: four file routes and
// an export job; with added, also the dataProject route opening and the
// export jobs vendor-package and vendor-master (a data project exported
// through the package API).
func demoConfig(added bool) []byte {
	type obj = map[string]any
	routes := []obj{
		{"route": "customers", "activityId": actCustomers, "entity": "Customer groups", "company": "USMF"},
		{"route": "vendors", "activityId": actVendors, "entity": "Vendor groups", "company": "USMF"},
		{"route": "products", "activityId": actProducts, "entity": "Released products V2", "company": "USMF"},
		{"route": "journals", "activityId": actJournals, "entity": "General journal", "company": "USMF", "settle": "2s"},
	}
	jobs := []obj{{"job": "customer-groups", "schedule": "cron(0 6 * * ? *)", "timezone": "Europe/Amsterdam",
		"activityId": actExportCSV, "prefix": "outbound/customer-groups/"}}
	if added {
		routes = append(routes, obj{"route": "opening", "kind": "dataProject", "definitionGroupId": "Opening balances", "legalEntityId": "USMF", "settle": "0s"},
			obj{"route": "groups", "kind": "dataProject", "definitionGroupId": "Customer groups", "legalEntityId": "USMF",
				"packageTemplate": demoTemplate, "settle": "0s"})
		jobs = append(jobs, obj{"job": "vendor-package", "schedule": "rate(1 hour)", "activityId": actExportPkg,
			"prefix": "outbound/vendor-package/", "unpack": true},
			obj{"job": "vendor-master", "schedule": "cron(0 5 * * ? *)", "kind": "dataProject", "definitionGroupId": vendorMasterProject,
				"legalEntityId": "USMF"})
	}
	b, _ := json.MarshalIndent(obj{"routes": routes, "jobs": jobs}, "", "  ")
	return append(b, '\n')
}

// operate drops the files, queues the exports and operates the stack; it
// returns the exports' correlation IDs, each with its job.
func (d *Demo) operate(ctx context.Context, r *demoRun) (map[string]string, error) {
	d.say("▶ dropping %d files under inbound/ and queueing 3 exports in F&O", len(demoFiles))
	if err := d.dropFiles(ctx, r.s3, r.stack.Bucket, demoFiles, 0); err != nil {
		return nil, err
	}
	exports, err := queueDemoExports(r.emu)
	if err != nil {
		return nil, err
	}
	d.say("▶ running an export job now rather than at its schedule's time (a one-off schedule the local scheduler fires, then deletes)")
	if code, _ := d.s3fno(ctx, true, "jobs", "run", "customer-groups"); code != 0 {
		return nil, fmt.Errorf("s3fno jobs run customer-groups: exit %d", code)
	}
	d.say("▶ storing the package template %s (the Manifest.xml and PackageHeader.xml of a package exported once from the data project)", demoTemplate)
	if err := putTemplate(ctx, r.s3, r.stack.Bucket, demoTemplate); err != nil {
		return nil, err
	}
	d.say("▶ adding routes opening (a data project: packages go in through F&O's package API) and groups (plain files wrapped in " +
		"the template on the way), and export jobs vendor-package and vendor-master (a data project exported through the package API)")
	d.s3fno(ctx, true, "config", "diff", d.writeDoc("config-2.json", demoConfig(true)))
	if err := d.applyConfig(ctx, "config-2.json", demoConfig(true)); err != nil {
		return nil, err
	}
	d.say("  (dropped at once: a file for a folder the functions do not know yet makes them look at the document again)")
	if err := d.dropFiles(ctx, r.s3, r.stack.Bucket, []droppedFile{packageFile, templateFile}, 0); err != nil {
		return nil, err
	}
	for _, job := range []string{"vendor-package", "vendor-master"} {
		if code, _ := d.s3fno(ctx, true, "jobs", "run", job); code != 0 {
			return nil, fmt.Errorf("s3fno jobs run %s: exit %d", job, code)
		}
	}
	return exports, d.pauseWhileFilesArrive(ctx, r)
}

// pauseWhileFilesArrive pauses journals, drops a burst into it (its
// notifications handed to the router shuffled, one twice), shows the files
// waiting and F&O untouched, and resumes it: they then go in drop order
// (summarizeOrder checks).
func (d *Demo) pauseWhileFilesArrive(ctx context.Context, r *demoRun) error {
	d.say("▶ pausing journals, then a burst: %d journal files a quarter of a second apart, their notifications shuffled and one repeated",
		len(burstFiles))
	if code, _ := d.s3fno(ctx, true, "pause", "journals", "--reason", "month-end close"); code != 0 {
		return fmt.Errorf("s3fno pause journals: exit %d", code)
	}
	release := r.loops.Hold(r.stack.ArrivalsURL)
	err := d.dropFiles(ctx, r.s3, r.stack.Bucket, burstFiles, 250*time.Millisecond)
	if err == nil {
		err = shuffleNotifications(ctx, sqs.NewFromConfig(r.cfg), r.stack.ArrivalsURL)
	}
	release()
	if err != nil {
		return err
	}
	if err := d.waitQueuesEmpty(ctx, r); err != nil {
		return err
	}
	var rep status.Report
	if code, out := d.s3fno(ctx, false, "status", "--json"); code != 0 || json.Unmarshal([]byte(out), &rep) != nil {
		return fmt.Errorf("s3fno status --json: exit %d: %s", code, out)
	}
	waiting, paused := 0, false
	for _, rv := range rep.Routes {
		if rv.Route == "journals" {
			waiting, paused = rv.Waiting, rv.Paused != nil
		}
	}
	sent := journalsSent(r.emu)
	d.say("  while journals is paused: %d of its files wait in inbound/, %d reached F&O", waiting, sent)
	if !paused || waiting != len(burstFiles) || sent != 0 {
		d.problems = append(d.problems, fmt.Sprintf("while journals was paused: paused %v, %d file(s) waiting (want %d), %d sent to F&O (want 0)",
			paused, waiting, len(burstFiles), sent))
	}
	d.s3fno(ctx, true, "status")
	if code, _ := d.s3fno(ctx, true, "resume", "journals"); code != 0 {
		return fmt.Errorf("s3fno resume journals: exit %d", code)
	}
	return nil
}

func journalsSent(emu *d365test.Emulator) int {
	n := 0
	for _, m := range emu.Messages() {
		if m.ActivityID == actJournals {
			n++
		}
	}
	return n
}

// waitQueuesEmpty waits until the router has taken every notification and
// the release passes they asked for have run: the arrivals and import
// queues empty twice, the second time after the journals' settle window.
func (d *Demo) waitQueuesEmpty(ctx context.Context, r *demoRun) error {
	q := sqs.NewFromConfig(r.cfg)
	deadline := time.Now().Add(d.Timeout)
	for quiet := 0; quiet < 2; {
		n := 0
		for _, url := range []string{r.stack.ArrivalsURL, r.stack.ImportURL} {
			out, err := q.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: &url, AttributeNames: []sqstypes.QueueAttributeName{
				sqstypes.QueueAttributeNameApproximateNumberOfMessages, sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible}})
			if err != nil {
				return err
			}
			for _, v := range out.Attributes {
				k, _ := strconv.Atoi(v)
				n += k
			}
		}
		if n == 0 {
			quiet++
			time.Sleep(3 * time.Second)
			continue
		}
		quiet = 0
		if time.Now().After(deadline) {
			return fmt.Errorf("the arrivals and import queues did not empty within %s", d.Timeout)
		}
		time.Sleep(300 * time.Millisecond)
	}
	return nil
}

// writeDoc writes a document into the demo's folder and returns its path.
func (d *Demo) writeDoc(name string, data []byte) string {
	p := filepath.Join(d.Dir, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		d.problems = append(d.problems, err.Error())
	}
	return p
}

// applyConfig stores a document with s3fno config apply.
func (d *Demo) applyConfig(ctx context.Context, name string, data []byte) error {
	if code, _ := d.s3fno(ctx, true, "config", "apply", d.writeDoc(name, data)); code != 0 {
		return fmt.Errorf("s3fno config apply %s: exit %d", name, code)
	}
	return nil
}

// s3fno runs the operator's tool (internal/ops/cli, what cmd/s3fno runs)
// against the demo's env file; with show, it prints the command and what
// it printed.
func (d *Demo) s3fno(ctx context.Context, show bool, args ...string) (int, string) {
	var out, errOut bytes.Buffer
	code := cli.Main(ctx, append(slices.Clone(args), "--env-file", d.envFile), &out, &errOut)
	if show || code != 0 {
		shown := make([]string, len(args))
		for i, a := range args {
			shown[i] = a
			if strings.ContainsAny(a, " \"") {
				shown[i] = strconv.Quote(a)
			}
			if strings.HasPrefix(a, d.Dir+string(filepath.Separator)) {
				shown[i] = filepath.Base(a)
			}
		}
		d.mu.Lock()
		fmt.Fprintf(d.Out, "  $ s3fno %s\n", strings.Join(shown, " "))
		for _, line := range strings.Split(strings.TrimRight(out.String()+errOut.String(), "\n"), "\n") {
			fmt.Fprintln(d.Out, strings.TrimRight("    "+line, " "))
		}
		d.mu.Unlock()
	}
	return code, out.String()
}

// putTemplate stores a package template for the entity Customer groups, as
// a person would copy the two files into the bucket.
func putTemplate(ctx context.Context, c *s3.Client, bucket, name string) error {
	manifest, header := d365test.TemplateFiles("Customer groups", "Customer groups", "Customer groups.csv")
	for file, body := range map[string][]byte{"Manifest.xml": manifest, "PackageHeader.xml": header} {
		key := layout.TemplateKey(name, file)
		if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: &key, Body: bytes.NewReader(body)}); err != nil {
			return fmt.Errorf("store the package template %s: %w", key, err)
		}
	}
	return nil
}
