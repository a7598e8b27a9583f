package localrun_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/fno-bridge/s3-fno/internal/local/localrun"
	"github.com/fno-bridge/s3-fno/internal/local/pipelinetest"
	"github.com/fno-bridge/s3-fno/internal/ops/cli"
	"github.com/fno-bridge/s3-fno/internal/ops/status"
	"github.com/fno-bridge/s3-fno/pkg/d365/d365test"
)

// TestUp brings the long-lived local stack up on the emulator and works it
// as a person would, through the env file it writes and the operator's
// tool: a dropped file is followed to processed/; config apply adds a
// route, which takes effect (the emulator learns its job from the
// document); jobs run lands an export through a one-off schedule that the
// local scheduler fires and deletes; status shows the run; doctor passes
// every check. Closing it stops every process it started.
func TestUp(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs all four functions")
	}
	ctx := context.Background()
	var out pipelinetest.SyncBuffer
	u := &localrun.Up{Repo: repoRoot(t), Dir: t.TempDir(), Out: &out, PollEvery: time.Second, ScheduleEvery: time.Second, ConfigRefresh: time.Second}
	r, err := u.Start(ctx)
	if err != nil {
		t.Fatalf("up: %v\n%s", err, out.String())
	}
	closed := false
	defer func() {
		if !closed {
			r.Close()
		}
	}()
	s3c, bucket := upS3(r), r.Stack.Bucket

	drop(t, s3c, bucket, "inbound/customers/groups-1.csv", "CUSTGROUP,NAME\r\n10,Wholesale\r\n")
	waitKey(t, s3c, bucket, "processed/customers/", "groups-1.csv", &out)

	doc := strings.Replace(localrun.SampleConfig, `"routes": [`, `"routes": [
    {"route": "budgets", "activityId": "b0b0b0b0-1111-4222-8333-444455556666", "entity": "Budget register entries", "company": "USMF"},`, 1)
	next := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(next, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, o, e := s3fno(r, "config", "apply", next); code != 0 || !strings.Contains(o, "add route budgets") {
		t.Fatalf("config apply: %d\n%s%s", code, o, e)
	}
	time.Sleep(2 * u.ConfigRefresh) // the functions look at the document again
	drop(t, s3c, bucket, "inbound/budgets/budget-1.csv", "ACCOUNT,AMOUNT\r\n6100,1000\r\n")
	waitKey(t, s3c, bucket, "processed/budgets/", "budget-1.csv", &out)

	if code, o, e := s3fno(r, "jobs", "run", "customer-groups"); code != 0 || !strings.Contains(o, "customer-groups.now") {
		t.Fatalf("jobs run: %d\n%s%s", code, o, e)
	}
	waitKey(t, s3c, bucket, "outbound/customer-groups/", "customer-groups.csv", &out)
	waitFor(t, &out, "the one-off schedule deleted after its run", func() bool { return strings.Contains(out.String(), "deleted after its run") })
	var rep status.Report
	if code, o, e := s3fno(r, "status", "--json"); code != 0 || json.Unmarshal([]byte(o), &rep) != nil {
		t.Fatalf("status: %d\n%s%s", code, o, e)
	}
	if j := findJob(rep, "customer-groups"); j == nil || j.LastRun.IsZero() || j.LastLanding.IsZero() || len(rep.Routes) != 5 {
		t.Errorf("status after the run: %+v", rep)
	}
	if code, o, e := s3fno(r, "doctor"); code != 0 {
		t.Errorf("doctor against the local stack: %d\n%s%s", code, o, e)
	}

	pids, endpoints := r.PIDs(), []string{r.MotoURL, r.Emulator.URL()}
	r.Close()
	closed = true
	checkStopped(t, pids, endpoints)
}

// TestUpWithARealFnO runs the stack against an F&O it did not start (an
// emulator standing in for a sandbox, reached by URL, tenant, client ID,
// secret and CA bundle as a real one would be): nothing of the emulator
// is started, the secret is in moto's Secrets Manager and nowhere in the
// env file, the output or the logs, and a dropped file reaches processed/.
func TestUpWithARealFnO(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs all four functions")
	}
	ctx := context.Background()
	sandbox := d365test.NewT(t, d365test.Options{HTTPDownloadLocation: true, ClientSecret: "sandbox-secret-Q1w2E3"})
	const act = "5d3c1e0a-7b64-4e7a-9b2f-8f6b3a521c0d"
	sandbox.AddActivity(act, d365test.Activity{Name: "Import customer groups", InOrder: true})
	ca := filepath.Join(t.TempDir(), "sandbox-ca.pem")
	if err := os.WriteFile(ca, sandbox.CertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() { // the sandbox's own batch job
		for {
			select {
			case <-stop:
				return
			case <-time.After(300 * time.Millisecond):
				sandbox.Tick()
			}
		}
	}()
	var out pipelinetest.SyncBuffer
	dir := t.TempDir()
	u := &localrun.Up{Repo: repoRoot(t), Dir: dir, Out: &out, Name: "sandbox", PollEvery: time.Second, ConfigRefresh: time.Second,
		Config: []byte(`{"routes":[{"route":"customers","activityId":"` + act + `","entity":"Customer groups"}],"jobs":[]}`),
		FnO: &localrun.FnOSettings{BaseURL: sandbox.URL(), TenantID: sandbox.TenantID(), ClientID: sandbox.ClientID(),
			ClientSecret: sandbox.ClientSecret(), AuthorityHost: strings.TrimSuffix(sandbox.AuthorityURL(), "/"+sandbox.TenantID()), CABundle: ca}}
	r, err := u.Start(ctx)
	if err != nil {
		t.Fatalf("up: %v\n%s", err, out.String())
	}
	defer r.Close()
	if r.Emulator != nil || r.ConfigFile != "" {
		t.Errorf("up started an emulator (%v) or wrote a sample document (%q) beside a real F&O", r.Emulator, r.ConfigFile)
	}
	sec, err := secretsmanager.NewFromConfig(upAWS(r)).GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: &r.Stack.SecretARN})
	if err != nil || !strings.Contains(aws.ToString(sec.SecretString), sandbox.ClientSecret()) {
		t.Errorf("the secret in Secrets Manager: %v", err)
	}
	s3c := upS3(r)
	drop(t, s3c, r.Stack.Bucket, "inbound/customers/groups-1.csv", "CUSTGROUP,NAME\r\n10,Wholesale\r\n")
	waitKey(t, s3c, r.Stack.Bucket, "processed/customers/", "groups-1.csv", &out)
	if got := len(sandbox.Messages()); got != 1 {
		t.Errorf("the sandbox got %d messages, want 1", got)
	}
	texts := map[string]string{"output": out.String()}
	files, _ := filepath.Glob(filepath.Join(dir, "logs", "*.log"))
	for _, f := range append(files, r.EnvFile) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		texts[filepath.Base(f)] = string(b)
	}
	for name, text := range texts {
		for _, s := range append([]string{sandbox.ClientSecret()}, sandbox.IssuedTokens()...) {
			if strings.Contains(text, s) {
				t.Errorf("%s contains the client secret or a bearer token", name)
			}
		}
	}
}

func repoRoot(t *testing.T) string {
	repo, err := filepath.Abs("../../..")
	if err != nil {
		t.Fatal(err)
	}
	return repo
}

func upAWS(r *localrun.Running) aws.Config {
	return aws.Config{Region: "us-east-1", BaseEndpoint: aws.String(r.MotoURL),
		Credentials: credentials.NewStaticCredentialsProvider("test", "test", "")}
}

func upS3(r *localrun.Running) *s3.Client {
	return s3.NewFromConfig(upAWS(r), func(o *s3.Options) { o.UsePathStyle = true })
}

// s3fno runs the operator's tool against the stack's env file.
func s3fno(r *localrun.Running, args ...string) (int, string, string) {
	var o, e bytes.Buffer
	code := cli.Main(context.Background(), append(args, "--env-file", r.EnvFile), &o, &e)
	return code, o.String(), e.String()
}

func drop(t *testing.T, c *s3.Client, bucket, key, body string) {
	t.Helper()
	if _, err := c.PutObject(context.Background(), &s3.PutObjectInput{Bucket: &bucket, Key: &key, Body: strings.NewReader(body)}); err != nil {
		t.Fatal(err)
	}
}

// waitKey waits for a key under prefix ending in name.
func waitKey(t *testing.T, c *s3.Client, bucket, prefix, name string, out *pipelinetest.SyncBuffer) {
	t.Helper()
	waitFor(t, out, prefix+"…"+name, func() bool {
		res, err := c.ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: &bucket, Prefix: &prefix})
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range res.Contents {
			if strings.HasSuffix(aws.ToString(o.Key), name) {
				return true
			}
		}
		return false
	})
}

// waitFor polls cond; it gives up (a hung stack, not a slow one) after
// three minutes.
func waitFor(t *testing.T, out *pipelinetest.SyncBuffer, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(3 * time.Minute); !cond(); time.Sleep(200 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("no %s\n%s", what, out.String())
		}
	}
}

func findJob(rep status.Report, job string) *status.JobView {
	for i := range rep.Jobs {
		if rep.Jobs[i].Job == job {
			return &rep.Jobs[i]
		}
	}
	return nil
}

// checkStopped: no process is left and no endpoint answers.
func checkStopped(t *testing.T, pids []int, endpoints []string) {
	t.Helper()
	if len(pids) != 5 {
		t.Errorf("%d processes (moto_server and 4 functions expected): %v", len(pids), pids)
	}
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); err == nil {
			t.Errorf("process %d still runs after Close", pid)
		}
	}
	for _, e := range endpoints {
		u, err := url.Parse(e)
		if err != nil {
			t.Fatal(err)
		}
		if conn, err := net.DialTimeout("tcp", u.Host, 5*time.Second); err == nil {
			conn.Close()
			t.Errorf("%s still listens after Close", e)
		}
	}
}

// TestUpRefusesBadSettings: a starting document that does not validate,
// or a real F&O with a setting missing, stops up before anything is built,
// with an error naming what to fix.
func TestUpRefusesBadSettings(t *testing.T) {
	sandbox := "https://contoso.sandbox.operations.dynamics.com"
	for _, tc := range []struct {
		up   *localrun.Up
		want string
	}{
		{&localrun.Up{Config: []byte(`{"routes":[{"route":"customers","activityId":"nope","entity":"E"}],"jobs":[]}`)},
			`routes[0] ("customers"): activityId: "nope" is not a GUID`},
		{&localrun.Up{FnO: &localrun.FnOSettings{BaseURL: sandbox, ClientID: "c", ClientSecret: "s"}}, "-fno-tenant-id"},
		{&localrun.Up{FnO: &localrun.FnOSettings{BaseURL: sandbox, TenantID: "t", ClientID: "c"}}, "FNO_CLIENT_SECRET"},
		{&localrun.Up{FnO: &localrun.FnOSettings{BaseURL: "http://contoso", TenantID: "t", ClientID: "c", ClientSecret: "s"}}, "https"},
	} {
		u := tc.up
		u.Repo, u.Dir = repoRoot(t), t.TempDir()
		r, err := u.Start(context.Background())
		if err == nil {
			r.Close()
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("up: %v, want an error naming %s", err, tc.want)
		}
	}
}
