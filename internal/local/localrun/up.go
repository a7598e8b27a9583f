package localrun

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/scheduler"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/fno-bridge/s3-fno/internal/local/moto"
	"github.com/fno-bridge/s3-fno/internal/ops/configdoc"
	fnoconfig "github.com/fno-bridge/s3-fno/internal/shared/config"
	"github.com/fno-bridge/s3-fno/pkg/d365/d365test"
)

// Up is a long-lived local stack (`localrun up`, `make up`): moto_server
// with the template's stack on it, the four built functions behind Runtime
// API hosts, the event source mappings, the poller's schedule and the
// export jobs' schedules (Scheduler), against the F&O emulator or a real
// F&O environment, until it is stopped. The functions go by the
// configuration document, stored at the start through the operator's code
// (configdoc, as `s3fno config apply`); the env file it writes lets s3fno,
// `make invoke LOCAL=0` and `sam local invoke` reach the same stack.
type Up struct {
	Repo string // the repository root (for building functions)
	Dir  string // built functions, logs, env.json, config.json, the emulator's CA
	Name string // the stack's name (resource names, notification subjects); default "local"
	// Config is the starting document; nil stores SampleConfig with the
	// emulator, and an empty document with a real F&O.
	Config []byte
	FnO    *FnOSettings // nil: the F&O emulator
	// PollEvery is the poller schedule's period (default 5s),
	// ScheduleEvery how often the export schedules are looked at
	// (default 2s), ConfigRefresh the functions' CONFIG_REFRESH (default
	// 5s; 30s on AWS).
	PollEvery, ScheduleEvery, ConfigRefresh time.Duration
	Out                                     io.Writer

	mu sync.Mutex // Out, shared by the loops
}

// Running is a started Up.
type Running struct {
	Stack      *Stack
	EnvFile    string             // absolute path of env.json
	ConfigFile string             // the sample document written for editing, or ""
	MotoURL    string             // moto_server's endpoint
	Emulator   *d365test.Emulator // nil with a real F&O
	// FunctionARNs are the functions by logical ID (the ARNs their hosts
	// and moto's placeholders share).
	FunctionARNs map[string]string

	moto    *moto.Server
	motoLog io.Closer
	fns     *Functions
	loops   *Loops
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// upFunctions are the template's functions with their local timeouts.
var upFunctions = []FunctionSpec{
	{LogicalID: "RouterFunction", Package: "./functions/router", Timeout: 30 * time.Second},
	{LogicalID: "EnqueueFunction", Package: "./functions/enqueue", Timeout: 300 * time.Second},
	{LogicalID: "PollerFunction", Package: "./functions/poller", Timeout: 120 * time.Second},
	{LogicalID: "DequeueFunction", Package: "./functions/dequeue", Timeout: 300 * time.Second},
}

// Run starts the stack, says how to use it, and runs it until ctx ends;
// then it stops everything it started.
func (u *Up) Run(ctx context.Context) error {
	r, err := u.Start(ctx)
	if err != nil {
		return err
	}
	u.explain(r)
	<-ctx.Done()
	u.say("\n▶ stopping: the functions, the emulator and moto_server (the stack's data goes with it)")
	r.Close()
	return nil
}

// Start brings the stack up and returns once it runs. Close stops it.
func (u *Up) Start(ctx context.Context) (_ *Running, err error) {
	if err := u.defaults(); err != nil {
		return nil, err
	}
	r := &Running{}
	defer func() {
		if err != nil {
			r.Close()
		}
	}()
	fno, err := u.standIns(ctx, r)
	if err != nil {
		return nil, err
	}
	cfg := motoConfig(r.MotoURL)
	if r.Stack, err = Provision(ctx, cfg, StackSpec{Name: u.Name, ClientSecret: fno.ClientSecret, VisibilityTimeout: 30, MaxReceiveCount: 5}); err != nil {
		return nil, err
	}
	u.say("  bucket %s, queues %s and %s, topic %s, schedule group %s", r.Stack.Bucket, filepath.Base(r.Stack.ArrivalsURL),
		filepath.Base(r.Stack.ImportURL), topicName(r.Stack.NotifyTopicARN), r.Stack.ScheduleGroup)
	ids := make([]string, len(upFunctions))
	for i, f := range upFunctions {
		ids[i] = f.LogicalID
	}
	if r.FunctionARNs, err = registerFunctions(ctx, cfg, r.Stack, ids); err != nil {
		return nil, err
	}
	if err := u.storeConfig(ctx, cfg, r); err != nil {
		return nil, err
	}
	env := stackEnv(r.moto, fno, r.Stack)
	env["CONFIG_REFRESH"] = u.ConfigRefresh.String()
	if u.FnO != nil {
		env["POLL_INTERVAL"] = "5s"
	}
	r.EnvFile = filepath.Join(u.Dir, "env.json")
	if err := writeEnvFile(r.EnvFile, env, r.Stack, r.FunctionARNs); err != nil {
		return nil, err
	}
	u.say("▶ building the functions and starting them behind Runtime API hosts (logs in %s)", filepath.Join(u.Dir, "logs"))
	specs := make([]FunctionSpec, len(upFunctions))
	for i, f := range upFunctions {
		f.Env = env
		specs[i] = f
	}
	if r.fns, err = StartFunctions(ctx, u.Repo, u.Dir, specs); err != nil {
		return nil, err
	}
	u.startLoops(ctx, cfg, r)
	return r, nil
}

// defaults fills in what was not given and makes Dir absolute (the
// functions run in their bootstrap's folder).
func (u *Up) defaults() error {
	if u.Name == "" {
		u.Name = "local"
	}
	if u.Out == nil {
		u.Out = io.Discard
	}
	for _, d := range []struct {
		p   *time.Duration
		def time.Duration
	}{{&u.PollEvery, 5 * time.Second}, {&u.ScheduleEvery, 2 * time.Second}, {&u.ConfigRefresh, 5 * time.Second}} {
		if *d.p <= 0 {
			*d.p = d.def
		}
	}
	if u.FnO != nil {
		if err := u.FnO.check(); err != nil {
			return err
		}
	}
	dir, err := filepath.Abs(u.Dir)
	if err != nil {
		return err
	}
	u.Dir = dir
	return os.MkdirAll(filepath.Join(u.Dir, "logs"), 0o755)
}

// standIns starts moto_server and, without a real F&O, the emulator, and
// returns the F&O settings the functions get.
func (u *Up) standIns(ctx context.Context, r *Running) (FnOSettings, error) {
	if u.FnO != nil {
		u.say("▶ starting moto_server (S3, SQS, SNS, Secrets Manager, EventBridge Scheduler); F&O is %s", u.FnO.BaseURL)
	} else {
		u.say("▶ starting moto_server (S3, SQS, SNS, Secrets Manager, EventBridge Scheduler) and the F&O emulator")
	}
	logs, err := os.Create(filepath.Join(u.Dir, "logs", "moto_server.log"))
	if err != nil {
		return FnOSettings{}, err
	}
	m, err := moto.Start(ctx, logs)
	if err != nil {
		logs.Close()
		return FnOSettings{}, err
	}
	r.moto, r.motoLog, r.MotoURL = m, logs, m.URL
	if u.FnO != nil {
		return *u.FnO, nil
	}
	if r.Emulator, err = d365test.Start(d365test.Options{HTTPDownloadLocation: true}); err != nil {
		return FnOSettings{}, err
	}
	ca, err := writeCABundle(u.Dir, r.Emulator)
	if err != nil {
		return FnOSettings{}, err
	}
	return emulatorSettings(r.Emulator, ca), nil
}

// storeConfig stores the starting document through configdoc, as `s3fno
// config apply` does: validated, then stored, then the export schedules
// made to match. The sample is also written to Dir/config.json, to edit
// and apply again.
func (u *Up) storeConfig(ctx context.Context, cfg aws.Config, r *Running) error {
	data := u.Config
	switch {
	case data != nil:
	case u.FnO == nil:
		data = []byte(SampleConfig)
	default:
		data = []byte(`{"routes": [], "jobs": []}` + "\n")
	}
	if u.Config == nil {
		r.ConfigFile = filepath.Join(u.Dir, "config.json")
		if err := os.WriteFile(r.ConfigFile, data, 0o644); err != nil {
			return err
		}
	}
	m := &configdoc.Manager{S3: newS3Client(cfg), Bucket: r.Stack.Bucket, Key: fnoconfig.DefaultKey,
		Schedules: &configdoc.Schedules{Client: scheduler.NewFromConfig(cfg), Group: r.Stack.ScheduleGroup,
			FunctionARN: r.FunctionARNs["DequeueFunction"], RoleARN: r.Stack.ScheduleRoleARN, DLQARN: r.Stack.ScheduleDLQARN}}
	rep, err := m.Apply(ctx, data)
	if err != nil {
		return fmt.Errorf("the starting configuration document: %w", err)
	}
	doc, _ := m.Validate(data)
	u.say("▶ configuration document stored at %s: routes %s; jobs %s (%d schedule(s) in %s)", rep.Document,
		orNone(doc.Routes.Names()), orNone(jobNames(doc)), len(rep.Schedules), r.Stack.ScheduleGroup)
	return nil
}

func jobNames(doc *fnoconfig.Document) []string {
	var out []string
	for _, j := range doc.Jobs {
		out = append(out, j.Name)
	}
	return out
}

func orNone(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// writeEnvFile writes the env file: the functions' environment fnEnv
// (never the client secret: it is in Secrets Manager) and what the
// operator's tool needs besides (the arrivals and schedule queues, the
// export schedules' group, role and dead-letter queue, the functions as
// <ROLE>_FUNCTION), as {"Parameters": {...}}: the form s3fno --env-file,
// make invoke LOCAL=0 and sam local invoke --env-vars all read.
func writeEnvFile(path string, fnEnv map[string]string, st *Stack, functionARNs map[string]string) error {
	p := maps.Clone(fnEnv)
	for k, v := range map[string]string{"ARRIVALS_QUEUE_URL": st.ArrivalsURL, "ARRIVALS_DLQ_URL": st.ArrivalsDLQURL,
		"SCHEDULE_DLQ_URL": st.ScheduleDLQURL, "EXPORT_SCHEDULE_GROUP": st.ScheduleGroup, "EXPORT_SCHEDULE_ROLE_ARN": st.ScheduleRoleARN,
		"SCHEDULE_DLQ_ARN": st.ScheduleDLQARN} {
		p[k] = v
	}
	for id, arn := range functionARNs {
		p[strings.ToUpper(strings.TrimSuffix(id, "Function"))+"_FUNCTION"] = arn
	}
	b, err := json.MarshalIndent(map[string]map[string]string{"Parameters": p}, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o600)
}

// startLoops starts the mappings, the schedules, F&O's batch job (the
// emulator), the emulator's activities following the document, and the
// notifications as they come.
func (u *Up) startLoops(ctx context.Context, cfg aws.Config, r *Running) {
	ctx, r.cancel = context.WithCancel(ctx)
	sqsc := sqs.NewFromConfig(cfg)
	r.loops = &Loops{Mappings: demoMappings(cfg, r.Stack, r.fns),
		Poller: &Schedule{Name: "poller schedule", Every: u.PollEvery, Input: []byte(`{"task":"poll"}`), Function: r.fns.Invoker("PollerFunction")},
		Exports: &Scheduler{Client: scheduler.NewFromConfig(cfg), Group: r.Stack.ScheduleGroup, FunctionARN: r.FunctionARNs["DequeueFunction"],
			Function: r.fns.Invoker("DequeueFunction")},
		ExportsEvery: u.ScheduleEvery, Say: u.say}
	var side []func(context.Context)
	if r.Emulator != nil {
		r.loops.Batch = r.Emulator.Tick
		es := newEmulatorSync(r.Emulator, newS3Client(cfg), r.Stack.Bucket, fnoconfig.DefaultKey, u.say)
		es.step(ctx)
		side = append(side, es.step)
	}
	side = append(side, func(ctx context.Context) {
		ns, err := ReadNotifications(ctx, sqsc, r.Stack.NotifyQueueURL)
		for _, n := range ns {
			u.mu.Lock()
			fmt.Fprint(u.Out, "  📣 ")
			printNotification(u.Out, "", n, false)
			u.mu.Unlock()
		}
		if err != nil && ctx.Err() == nil {
			u.say("  ! %v", err)
		}
	})
	r.loops.Start(ctx)
	for _, step := range side {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			for ctx.Err() == nil {
				step(ctx)
				select {
				case <-ctx.Done():
				case <-time.After(2 * time.Second):
				}
			}
		}()
	}
}

// PIDs are the processes the stack runs: moto_server and the functions.
func (r *Running) PIDs() []int {
	out := []int{r.moto.PID()}
	if r.fns != nil {
		out = append(out, r.fns.PIDs()...)
	}
	return out
}

// Close stops everything Start started, each by its own handle: the loops,
// the function processes, the emulator and moto_server. Safe on a partly
// started stack.
func (r *Running) Close() {
	if r == nil {
		return
	}
	if r.cancel != nil {
		r.cancel()
	}
	if r.loops != nil {
		r.loops.Stop()
	}
	r.wg.Wait()
	if r.fns != nil {
		r.fns.Close()
	}
	if r.Emulator != nil {
		r.Emulator.Close()
	}
	r.moto.Close()
	if r.motoLog != nil {
		r.motoLog.Close()
	}
}

// explain says how to use the running stack.
func (u *Up) explain(r *Running) {
	rel := func(p string) string {
		if wd, err := os.Getwd(); err == nil {
			if q, err := filepath.Rel(wd, p); err == nil && !strings.HasPrefix(q, "..") {
				return q
			}
		}
		return p
	}
	env := rel(r.EnvFile)
	u.say("\n✓ the local stack %q is up; Ctrl-C stops it and everything it started", r.Stack.Name)
	if r.Emulator == nil {
		u.say("  F&O: %s (the client secret is in moto's Secrets Manager, %s)", u.FnO.BaseURL, r.Stack.SecretARN)
	} else {
		u.say("  F&O: the emulator at %s", r.Emulator.URL())
	}
	u.say("  env file: %s (s3fno --env-file, make invoke LOCAL=0, sam local invoke --env-vars)", env)
	u.say("\n  go run ./cmd/s3fno status --env-file %s", env)
	if r.ConfigFile != "" {
		u.say("  go run ./cmd/s3fno config apply %s --env-file %s   # after editing it", rel(r.ConfigFile), env)
	}
	u.say("  go run ./cmd/s3fno jobs run <job> --env-file %s", env)
	u.say("  go run ./cmd/s3fno doctor --env-file %s", env)
	u.say("  AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test aws --endpoint-url %s --region us-east-1 s3 cp FILE s3://%s/inbound/<route>/",
		r.MotoURL, r.Stack.Bucket)
	u.say("\n  function logs: %s; what people would be told (📣) and the schedules' runs (⏰) show below\n", rel(filepath.Join(u.Dir, "logs")))
}

func (u *Up) say(format string, a ...any) {
	u.mu.Lock()
	defer u.mu.Unlock()
	fmt.Fprintf(u.Out, format+"\n", a...)
}
