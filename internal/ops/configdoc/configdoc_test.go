package configdoc_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/scheduler"

	"github.com/fno-bridge/s3-fno/internal/local/mototest"
	"github.com/fno-bridge/s3-fno/internal/local/pipelinetest"
	"github.com/fno-bridge/s3-fno/internal/ops/configdoc"
	"github.com/fno-bridge/s3-fno/internal/shared/config"
)

func TestMain(m *testing.M) { pipelinetest.Main(m) }

const act = "5d3c1e0a-7b64-4e7a-9b2f-8f6b3a521c0d"

func newManager(t *testing.T) (*configdoc.Manager, *scheduler.Client) {
	t.Helper()
	sc := scheduler.NewFromConfig(mototest.Config(t))
	group := mototest.Name("exports")
	if _, err := sc.CreateScheduleGroup(context.Background(), &scheduler.CreateScheduleGroupInput{Name: &group}); err != nil {
		t.Fatal(err)
	}
	m := &configdoc.Manager{S3: mototest.S3(t), Bucket: mototest.NewBucket(t), Key: config.DefaultKey,
		Schedules: &configdoc.Schedules{Client: sc, Group: group,
			FunctionARN: "arn:aws:lambda:us-east-1:123456789012:function:s3-fno-DequeueFunction-1",
			RoleARN:     "arn:aws:iam::123456789012:role/s3-fno-ExportScheduleRole-1",
			DLQARN:      "arn:aws:sqs:us-east-1:123456789012:s3-fno-schedules-dlq"}}
	return m, sc
}

func doc(jobs ...string) []byte {
	return []byte(`{"routes":[{"route":"customers","activityId":"` + act + `","entity":"Customer groups"}],"jobs":[` + strings.Join(jobs, ",") + `]}`)
}

func job(name, schedule string, extra string) string {
	return `{"job":"` + name + `","schedule":"` + schedule + `","activityId":"` + act + `"` + extra + `}`
}

// TestApplyKeepsSchedulesInStep: applying a document stores it and makes
// one schedule per job, with the job as the dequeue function's input;
// applying a changed one updates, creates and deletes to match, and
// applying it again changes nothing.
func TestApplyKeepsSchedulesInStep(t *testing.T) {
	ctx := context.Background()
	m, sc := newManager(t)
	rep, err := m.Apply(ctx, doc(job("groups", "cron(0 6 * * ? *)", `,"timezone":"Europe/Amsterdam"`), job("vendors", "rate(1 hour)", "")))
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Stored || len(rep.Schedules) != 2 || rep.Schedules[0].Action != "create" || len(rep.Changes) != 3 {
		t.Fatalf("first apply: %+v", rep)
	}
	got, err := sc.GetSchedule(ctx, &scheduler.GetScheduleInput{Name: aws.String("groups"), GroupName: &m.Schedules.Group})
	if err != nil {
		t.Fatal(err)
	}
	var in map[string]any
	json.Unmarshal([]byte(aws.ToString(got.Target.Input)), &in)
	if aws.ToString(got.ScheduleExpression) != "cron(0 6 * * ? *)" || aws.ToString(got.ScheduleExpressionTimezone) != "Europe/Amsterdam" ||
		in["job"] != "groups" || in["activityId"] != act || in["schedule"] != nil ||
		aws.ToString(got.Target.Arn) != m.Schedules.FunctionARN || aws.ToString(got.Target.RoleArn) != m.Schedules.RoleARN {
		t.Errorf("schedule %+v, input %v", got, in)
	}

	rep, err = m.Apply(ctx, doc(job("groups", "cron(0 7 * * ? *)", `,"timezone":"Europe/Amsterdam"`), job("journals", "rate(15 minutes)", `,"enabled":false`)))
	if err != nil {
		t.Fatal(err)
	}
	actions := map[string]string{}
	for _, c := range rep.Schedules {
		actions[c.Job] = c.Action
	}
	if actions["groups"] != "update" || actions["journals"] != "create" || actions["vendors"] != "delete" {
		t.Errorf("second apply: %v", actions)
	}
	j, err := sc.GetSchedule(ctx, &scheduler.GetScheduleInput{Name: aws.String("journals"), GroupName: &m.Schedules.Group})
	if err != nil || j.State != "DISABLED" {
		t.Errorf("a disabled job's schedule: %v %v", j, err)
	}
	if _, err := sc.GetSchedule(ctx, &scheduler.GetScheduleInput{Name: aws.String("vendors"), GroupName: &m.Schedules.Group}); err == nil {
		t.Error("the removed job's schedule is still there")
	}
	rep, err = m.Apply(ctx, doc(job("groups", "cron(0 7 * * ? *)", `,"timezone":"Europe/Amsterdam"`), job("journals", "rate(15 minutes)", `,"enabled":false`)))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range rep.Schedules {
		if c.Action != "keep" {
			t.Errorf("the same document again: %+v", c)
		}
	}
	if rep.Stored || len(rep.Changes) != 0 {
		t.Errorf("the same document again was stored or changed something: %+v", rep)
	}
}

// TestApplyRefusesWhatDoesNotValidate: a bad document is refused with the
// reason, before anything is stored or scheduled; an export job whose
// input the dequeue function would refuse is refused too.
func TestApplyRefusesWhatDoesNotValidate(t *testing.T) {
	ctx := context.Background()
	m, _ := newManager(t)
	for _, tc := range []struct {
		doc  []byte
		want string
	}{
		{[]byte(`{"routes":[{"route":"customers"}]}`), `routes[0] ("customers"): activityId: is required`},
		{doc(job("groups", "rate(1 hour)", `,"prefix":"inbound/customers/"`)), `jobs[0] ("groups"): input: prefix: "inbound/customers/" is not under OUTBOUND_PREFIX`},
		{doc(job("groups", "every hour", "")), `jobs[0] ("groups"): schedule`},
	} {
		_, err := m.Apply(ctx, tc.doc)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "nothing was stored") {
			t.Errorf("%s: %v, want %q", tc.doc, err, tc.want)
		}
	}
	if _, err := m.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: &m.Bucket, Key: &m.Key}); err == nil {
		t.Error("a refused document was stored")
	}
}

// TestApplyDoesNotOverwriteAConcurrentChange: a document changed between
// reading and writing is not overwritten.
func TestApplyDoesNotOverwriteAConcurrentChange(t *testing.T) {
	ctx := context.Background()
	m, _ := newManager(t)
	if _, err := m.Apply(ctx, doc()); err != nil {
		t.Fatal(err)
	}
	racing := &racingS3{S3: m.S3, bucket: m.Bucket, key: m.Key}
	m.S3 = racing
	_, err := m.Apply(ctx, doc(job("groups", "rate(1 hour)", "")))
	if !errors.Is(err, configdoc.ErrChanged) {
		t.Fatalf("apply over a concurrent change: %v, want ErrChanged", err)
	}
}

// TestShownFileIsAppliedOverItsVersionOnly: a file saved from `config
// show` (version line, then the document) validates and applies while that
// version is current, and is stored without the line; once another apply
// has moved the document on, diff marks the file stale and apply refuses
// it, keeping the newer document.
func TestShownFileIsAppliedOverItsVersionOnly(t *testing.T) {
	ctx := context.Background()
	m, _ := newManager(t)
	m.Schedules = nil
	if _, err := m.Apply(ctx, doc()); err != nil {
		t.Fatal(err)
	}
	show := func() []byte {
		cur, err := m.Current(ctx)
		if err != nil || cur.VersionID == "" {
			t.Fatalf("current: %+v %v", cur, err)
		}
		return configdoc.Shown(cur.Raw, cur.VersionID)
	}
	edited := func(file []byte, jobs ...string) []byte {
		line, _, _ := strings.Cut(string(file), "\n")
		return []byte(line + "\n" + string(doc(jobs...)))
	}

	// Saved by an editor that puts a byte order mark first.
	file := append([]byte("\ufeff"), edited(show(), job("groups", "rate(1 hour)", ""))...)
	body, version := configdoc.SplitVersion(file)
	if _, err := m.Validate(body); err != nil || version == "" {
		t.Fatalf("a shown file does not validate: %v (version %q)", err, version)
	}
	if _, err := m.Validate(file); err == nil {
		t.Fatal("Validate took the version line as part of a document (the functions do not)")
	}
	rep, err := m.Apply(ctx, file)
	if err != nil || !rep.Stored || rep.Stale {
		t.Fatalf("apply over the version shown: %+v %v", rep, err)
	}
	cur, _ := m.Current(ctx)
	if string(cur.Raw) != string(doc(job("groups", "rate(1 hour)", ""))) {
		t.Fatalf("stored %q: the version line is no part of the document", cur.Raw)
	}

	stale := edited(show(), job("vendors", "rate(1 hour)", ""))
	if _, err := m.Apply(ctx, doc(job("groups", "rate(2 hours)", ""))); err != nil { // someone else's change
		t.Fatal(err)
	}
	plan, err := m.Plan(ctx, stale)
	if err != nil || !plan.Stale || plan.ShownFrom == "" {
		t.Fatalf("diff of a stale file: %+v %v", plan, err)
	}
	rep, err = m.Apply(ctx, stale)
	if !errors.Is(err, configdoc.ErrStale) || rep.Stored {
		t.Fatalf("apply of a stale file: %+v %v, want ErrStale", rep, err)
	}
	if cur, _ := m.Current(ctx); !strings.Contains(string(cur.Raw), "rate(2 hours)") {
		t.Fatalf("the newer document was overwritten: %s", cur.Raw)
	}
}

// racingS3 stores another document right after the current one is read.
type racingS3 struct {
	configdoc.S3
	bucket, key string
	done        bool
}

func (r *racingS3) GetObject(ctx context.Context, in *s3.GetObjectInput, o ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	out, err := r.S3.GetObject(ctx, in, o...)
	if !r.done {
		r.done = true
		r.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: &r.bucket, Key: &r.key, Body: strings.NewReader(string(doc(job("other", "rate(2 hours)", ""))))})
	}
	return out, err
}
