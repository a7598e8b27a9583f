package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/fno-bridge/s3-fno/internal/imports/enqueue"
	"github.com/fno-bridge/s3-fno/internal/imports/filing"
	"github.com/fno-bridge/s3-fno/internal/imports/poller"
	"github.com/fno-bridge/s3-fno/internal/imports/router"
	"github.com/fno-bridge/s3-fno/internal/local/mototest"
	"github.com/fno-bridge/s3-fno/internal/local/pipelinetest"
	"github.com/fno-bridge/s3-fno/internal/ops/cli"
	"github.com/fno-bridge/s3-fno/pkg/d365"
	"github.com/fno-bridge/s3-fno/pkg/d365/d365test"
)

func TestMain(m *testing.M) { pipelinetest.Main(m) }

// rig is a deployment on the stand-ins: moto's bucket, FIFO import queue
// and dead-letter queue, the secret in moto's Secrets Manager, the F&O
// emulator, the real router, enqueue and poller handlers (writing the
// where-index as the functions do), and the env file s3fno reads.
type rig struct {
	t       *testing.T
	w       *pipelinetest.Imports
	emu     *d365test.Emulator
	env     map[string]string // the env file's variables
	envFile string
	router  *router.Router
	enq     *enqueue.Handler
	poll    *poller.Poller
	clk     *pipelinetest.Clock
}

// newRig builds the deployment with routesDoc as ROUTES; fno adjusts the
// functions' F&O client.
func newRig(t *testing.T, routesDoc string, fifo pipelinetest.FIFO, fno func(*d365.Config)) *rig {
	t.Helper()
	return newRigWith(t, routesDoc, fifo, fno, d365test.Options{})
}

// newRigWith is newRig with an emulator of opts.
func newRigWith(t *testing.T, routesDoc string, fifo pipelinetest.FIFO, fno func(*d365.Config), opts d365test.Options) *rig {
	t.Helper()
	r := &rig{t: t, w: pipelinetest.NewImports(t, fifo), emu: pipelinetest.Emulator(t, opts, false),
		clk: pipelinetest.NewClock(time.Now())}
	r.env = r.w.Env(routesDoc)
	r.env["IMPORT_DLQ_URL"] = r.w.DLQ
	r.writeEnv(t)
	r.handlers(t, fno)
	return r
}

// writeEnv stores the client secret in Secrets Manager and writes the env
// file: what the functions get, and moto's endpoint and credentials.
func (r *rig) writeEnv(t *testing.T) {
	dir := t.TempDir()
	ca := filepath.Join(dir, "emulator-ca.pem")
	if err := os.WriteFile(ca, r.emu.CertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	sm := secretsmanager.NewFromConfig(mototest.Config(t))
	sec, err := sm.CreateSecret(context.Background(), &secretsmanager.CreateSecretInput{Name: aws.String(mototest.Name("fno")),
		SecretString: aws.String(fmt.Sprintf(`{"clientSecret":%q}`, r.emu.ClientSecret()))})
	if err != nil {
		t.Fatal(err)
	}
	au, _ := url.Parse(r.emu.AuthorityURL())
	for k, v := range map[string]string{"FNO_BASE_URL": r.emu.URL(), "FNO_TENANT_ID": r.emu.TenantID(), "FNO_CLIENT_ID": r.emu.ClientID(),
		"FNO_SECRET_ARN": aws.ToString(sec.ARN), "FNO_AUTHORITY_HOST": au.Scheme + "://" + au.Host, "FNO_CA_BUNDLE": ca,
		"AWS_ENDPOINT_URL": mototest.Endpoint(t), "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"} {
		r.env[k] = v
	}
	r.saveEnv()
}

// saveEnv writes r.env as the env file, in the form make invoke reads.
func (r *rig) saveEnv() {
	b, err := json.Marshal(map[string]map[string]string{"Parameters": r.env})
	if err != nil {
		r.t.Fatal(err)
	}
	if r.envFile == "" {
		r.envFile = filepath.Join(r.t.TempDir(), "env.json")
	}
	if err := os.WriteFile(r.envFile, b, 0o600); err != nil {
		r.t.Fatal(err)
	}
}

// handlers builds the import functions as their mains do.
func (r *rig) handlers(t *testing.T, fno func(*d365.Config)) {
	getenv := func(k string) string { return r.env[k] }
	log := pipelinetest.Quiet()
	mods := []func(*d365.Config){}
	if fno != nil {
		mods = append(mods, fno)
	}
	rcfg, err := router.ConfigFromEnv(getenv)
	if err != nil {
		t.Fatal(err)
	}
	index := &filing.Index{S3: r.w.S3, Bucket: r.w.Bucket, Layout: rcfg.Layout, Log: log}
	rcfg.Observers.Index = index
	if r.router, err = router.New(rcfg, r.w.S3, r.w.SQS, log); err != nil {
		t.Fatal(err)
	}
	ecfg, err := enqueue.ConfigFromEnv(getenv)
	if err != nil {
		t.Fatal(err)
	}
	ecfg.Observers.Index = index
	if r.enq, err = enqueue.New(ecfg, r.w.S3, pipelinetest.FnO(t, r.emu, mods...), r.w.SQS, log); err != nil {
		t.Fatal(err)
	}
	pcfg, err := poller.ConfigFromEnv(getenv)
	if err != nil {
		t.Fatal(err)
	}
	pcfg.Now, pcfg.SweepEvery, pcfg.TargetKeysWait, pcfg.Observers.Index = r.clk.Now, -1, 10*time.Millisecond, index
	budget := poller.NewBudget(pcfg.BudgetPerMinute)
	pmods := append(mods, func(c *d365.Config) { c.Limiter = budget })
	if r.poll, err = poller.New(pcfg, r.w.S3, pipelinetest.FnO(t, r.emu, pmods...), budget, r.w.SQS, log); err != nil {
		t.Fatal(err)
	}
}

// run runs s3fno with the env file; it returns the exit code and output.
func (r *rig) run(args ...string) (int, string, string) {
	r.t.Helper()
	var out, errOut bytes.Buffer
	code := cli.Main(context.Background(), append(args, "--env-file", r.envFile), &out, &errOut)
	return code, out.String(), errOut.String()
}

// runJSON runs s3fno with --json and decodes what it prints into v.
func (r *rig) runJSON(v any, args ...string) int {
	r.t.Helper()
	code, out, errOut := r.run(append(args, "--json")...)
	if out != "" {
		if err := json.Unmarshal([]byte(out), v); err != nil {
			r.t.Fatalf("s3fno %v --json printed what is not JSON (%v):\n%s\nstderr: %s", args, err, out, errOut)
		}
	}
	return code
}

// drop puts a file in the bucket and tells the router of it, as S3's
// notification would.
func (r *rig) drop(key, body string) string {
	r.t.Helper()
	v, etag := pipelinetest.Put(r.t, r.w.S3, r.w.Bucket, key, []byte(body))
	r.notify(key, v, etag, int64(len(body)))
	return v
}

// notify is S3's notification of one object version.
func (r *rig) notify(key, version, etag string, size int64) {
	r.t.Helper()
	ev := events.SQSEvent{Records: []events.SQSMessage{pipelinetest.Message("n-"+version, pipelinetest.S3Event(r.w.Bucket, key, version, etag, size))}}
	if _, err := r.router.Handle(context.Background(), ev); err != nil {
		r.t.Fatal(err)
	}
}

// release delivers one batch of the import queue: the release request.
func (r *rig) release() {
	r.t.Helper()
	esm := &pipelinetest.ESM{SQS: r.w.SQS, QueueURL: r.w.Queue}
	if !esm.Once(r.t, context.Background(), r.enq.Handle, 10) {
		r.t.Fatal("no release request in the import queue")
	}
}

// enqueueAll drains the import queue through the enqueue function.
func (r *rig) enqueueAll() {
	r.t.Helper()
	(&pipelinetest.ESM{SQS: r.w.SQS, QueueURL: r.w.Queue}).Drain(r.t, context.Background(), r.enq.Handle)
}

// finish lets F&O finish every message and runs the poller an hour on.
func (r *rig) finish() {
	r.t.Helper()
	r.emu.RunToCompletion()
	r.clk.Set(time.Now().Add(time.Hour))
	if _, err := r.poll.Handle(context.Background(), json.RawMessage(`{"task":"poll"}`)); err != nil {
		r.t.Fatal(err)
	}
}
