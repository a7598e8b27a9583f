package cli_test

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/scheduler"
	schedtypes "github.com/aws/aws-sdk-go-v2/service/scheduler/types"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/fno-bridge/s3-fno/internal/local/mototest"
	"github.com/fno-bridge/s3-fno/internal/local/pipelinetest"
	"github.com/fno-bridge/s3-fno/internal/ops/cli"
	"github.com/fno-bridge/s3-fno/internal/ops/doctor"
	"github.com/fno-bridge/s3-fno/pkg/d365/d365test"
)

// doctorRoutes are three file routes whose jobs the emulator knows.
const doctorRoutes = `[
 {"route":"customers","activityId":"` + pipelinetest.ActCustomers + `","entity":"Customer groups","company":"USMF"},
 {"route":"vendors","activityId":"` + pipelinetest.ActVendors + `","entity":"Vendor groups","company":"USMF"},
 {"route":"currencies","activityId":"` + pipelinetest.ActCurrencies + `","entity":"Currencies"}]`

// healthy adds what a whole deployment has beyond the import side: the
// arrivals queue and its dead-letter queue, the schedule dead-letter
// queue, the topic with a subscriber, and an enabled poll schedule.
func healthy(t *testing.T, r *rig) (schedule string) {
	t.Helper()
	ctx := context.Background()
	r.env["ARRIVALS_QUEUE_URL"], _ = pipelinetest.NewStandard(t, r.w.SQS, 30)
	r.env["ARRIVALS_DLQ_URL"], _ = pipelinetest.NewStandard(t, r.w.SQS, 30)
	inbox, inboxARN := pipelinetest.NewStandard(t, r.w.SQS, 30)
	r.env["SCHEDULE_DLQ_URL"] = inbox
	sn := sns.NewFromConfig(mototest.Config(t))
	topic, err := sn.CreateTopic(ctx, &sns.CreateTopicInput{Name: aws.String(mototest.Name("notify"))})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sn.Subscribe(ctx, &sns.SubscribeInput{TopicArn: topic.TopicArn, Protocol: aws.String("sqs"), Endpoint: &inboxARN}); err != nil {
		t.Fatal(err)
	}
	r.env["NOTIFY_TOPIC_ARN"] = aws.ToString(topic.TopicArn)
	schedule = mototest.Name("poll")
	if _, err := scheduler.NewFromConfig(mototest.Config(t)).CreateSchedule(ctx, &scheduler.CreateScheduleInput{Name: &schedule,
		ScheduleExpression: aws.String("rate(1 minute)"), FlexibleTimeWindow: &schedtypes.FlexibleTimeWindow{Mode: schedtypes.FlexibleTimeWindowModeOff},
		Target: &schedtypes.Target{Arn: aws.String("arn:aws:lambda:us-east-1:123456789012:function:poller"),
			RoleArn: aws.String("arn:aws:iam::123456789012:role/poll")}, State: schedtypes.ScheduleStateEnabled}); err != nil {
		t.Fatal(err)
	}
	r.saveEnv()
	return schedule
}

// failed are the names of the checks that failed, and the report.
func runDoctor(t *testing.T, r *rig, args ...string) (int, doctor.Report, map[string]doctor.Check) {
	t.Helper()
	var rep doctor.Report
	code := r.runJSON(&rep, append([]string{"doctor"}, args...)...)
	byName := map[string]doctor.Check{}
	for _, c := range rep.Checks {
		byName[c.Name] = c
	}
	return code, rep, byName
}

// failing lists the failed checks' names.
func failing(rep doctor.Report) []string {
	var out []string
	for _, c := range rep.Checks {
		if c.Result == doctor.Fail {
			out = append(out, c.Name)
		}
	}
	return out
}

// TestDoctorOnPremises: against an on-premises environment (AD FS, the
// AXSF namespace) doctor signs in and reaches F&O's OData under the
// namespace; a package API route checks out, and a recurring-job route is
// refused with what to do instead, since on-premises F&O has no recurring
// integrations.
func TestDoctorOnPremises(t *testing.T) {
	r := newRigWith(t, `[{"route":"customers","activityId":"`+pipelinetest.ActCustomers+`","entity":"Customer groups","company":"USMF"},
 {"route":"opening","kind":"dataProject","definitionGroupId":"Opening balances","legalEntityId":"USMF"}]`,
		pipelinetest.FIFO{MaxReceiveCount: 3}, nil, d365test.Options{OnPremises: true})
	schedule := healthy(t, r)
	// AD FS has no tenant: none is given.
	r.env["FNO_AUTHORITY_HOST"], r.env["FNO_TENANT_ID"], r.env["FNO_NAMESPACE"] = r.emu.ADFSAuthorityURL(), "", "AXSF"
	r.saveEnv()
	code, rep, byName := runDoctor(t, r, "--schedule", schedule)
	if got := strings.Join(failing(rep), ","); code != cli.ExitProblems || got != "route customers job "+pipelinetest.ActCustomers {
		t.Fatalf("exit %d, failed %q: %+v", code, got, rep.Checks)
	}
	c := byName["route customers job "+pipelinetest.ActCustomers]
	if !strings.Contains(c.Detail, "on-premises") || !strings.Contains(c.Fix, "dataProject") {
		t.Errorf("the recurring-job route's check: %+v", c)
	}
	if c := byName["F&O "+r.emu.URL()]; c.Result != doctor.OK {
		t.Errorf("F&O check: %+v", c)
	}
}

// TestDoctorHealthy: every link of a whole deployment on the stand-ins
// checks out, and the table says so.
func TestDoctorHealthy(t *testing.T) {
	r := newRig(t, doctorRoutes, pipelinetest.FIFO{MaxReceiveCount: 3}, nil)
	schedule := healthy(t, r)
	code, rep, _ := runDoctor(t, r, "--schedule", schedule)
	if code != cli.ExitOK || rep.Failed != 0 || rep.Warned != 0 {
		t.Errorf("exit %d, %d failed, %d warned: %+v", code, rep.Failed, rep.Warned, rep.Checks)
	}
	var names []string
	for _, c := range rep.Checks {
		names = append(names, c.Name)
	}
	for _, want := range []string{"bucket " + r.w.Bucket, "import queue", "import dead-letter queue", "arrivals queue", "notification topic",
		"Entra ID token", "F&O " + r.emu.URL(), "route vendors job " + pipelinetest.ActVendors, "schedule " + schedule,
		"import dead-letter queue empty", "schedule dead-letter queue empty"} {
		if !strings.Contains(strings.Join(names, "|"), want) {
			t.Errorf("no check %q among %v", want, names)
		}
	}
	code, out, _ := r.run("doctor", "--schedule", schedule)
	t.Logf("s3fno doctor:\n%s", out)
	if code != cli.ExitOK || !strings.Contains(out, "every link checked works; 1 not checked") { // the schedule group, without --stack
		t.Errorf("table: exit %d", code)
	}
}

// TestDoctorEachLinkBroken: each link broken in turn fails its own check
// (and skips the ones that need it), with a fix that names what to do.
func TestDoctorEachLinkBroken(t *testing.T) {
	for _, tc := range []struct {
		name  string
		brk   func(r *rig) []string // breaks the link; returns extra flags
		fails []string              // the checks that fail (prefixes)
		fix   []string              // words the first failed check's fix holds
	}{
		{"bucket missing", func(r *rig) []string { return []string{"--bucket", "no-such-bucket-anywhere"} },
			[]string{"bucket no-such-bucket-anywhere"}, []string{"no bucket has this name"}},
		{"secret unreadable", func(r *rig) []string {
			return []string{"--fno-secret-arn", "arn:aws:secretsmanager:us-east-1:123456789012:secret:gone-AbCdEf"}
		}, []string{"secret arn:"}, []string{"FNO_SECRET_ARN", "secretsmanager:GetSecretValue"}},
		{"Entra ID refuses the secret", func(r *rig) []string { r.emu.ExpireClientSecret(); return nil },
			[]string{"Entra ID token"}, []string{"expired", "Certificates & secrets"}},
		{"F&O does not know the app", func(r *rig) []string {
			r.emu.AddApp(d365test.App{ClientID: r.emu.ClientID(), ClientSecret: r.emu.ClientSecret(), NotInFO: true})
			return nil
		}, []string{"F&O https://"}, []string{"Microsoft Entra applications", "Set up authorization policy"}},
		{"a route's job is unknown", func(r *rig) []string {
			return []string{"--routes", `[{"route":"lost","activityId":"` + pipelinetest.ActMissing + `","entity":"Nothing"},
				{"route":"customers","activityId":"` + pipelinetest.ActCustomers + `","entity":"Customer groups"}]`}
		}, []string{"route lost job"}, []string{"Recurring data jobs", "activityId"}},
		{"a route's job does not authorize the app", func(r *rig) []string {
			r.emu.AddActivity(pipelinetest.ActVendors, d365test.Activity{Kind: d365test.File, AllowedApps: []string{"someone-else"}})
			return nil
		}, []string{"route vendors job"}, []string{"Set up authorization policy", "Microsoft Entra applications"}},
		{"schedule disabled", func(r *rig) []string { return nil }, []string{"schedule "}, []string{"enable it"}},
		{"a dead letter waits", func(r *rig) []string {
			if _, err := r.w.SQS.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: &r.w.DLQ, MessageBody: aws.String(`{"release":"customers"}`),
				MessageGroupId: aws.String("g"), MessageDeduplicationId: aws.String("d")}); err != nil {
				r.t.Fatal(err)
			}
			return nil
		}, []string{"import dead-letter queue empty"}, []string{"s3fno redrive"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, doctorRoutes, pipelinetest.FIFO{MaxReceiveCount: 3}, nil)
			schedule := healthy(t, r)
			if tc.name == "schedule disabled" {
				disable(t, schedule)
			}
			args := append([]string{"--schedule", schedule}, tc.brk(r)...)
			code, rep, _ := runDoctor(t, r, args...)
			if testing.Verbose() {
				_, out, _ := r.run(append([]string{"doctor"}, args...)...)
				t.Logf("s3fno doctor:\n%s", out)
			}
			got := failing(rep)
			if code != cli.ExitProblems || len(got) != len(tc.fails) {
				t.Fatalf("exit %d, failed %v, want %v: %+v", code, got, tc.fails, rep.Checks)
			}
			for i, want := range tc.fails {
				if !strings.HasPrefix(got[i], want) {
					t.Errorf("failed %v, want %v", got, tc.fails)
				}
			}
			var first doctor.Check
			for _, c := range rep.Checks {
				if c.Result == doctor.Fail && first.Name == "" {
					first = c
				}
			}
			for _, w := range tc.fix {
				if !strings.Contains(first.Fix+" "+first.Detail, w) {
					t.Errorf("%s: fix %q (detail %q) does not say %q", first.Name, first.Fix, first.Detail, w)
				}
			}
		})
	}
}

// disable turns a schedule off, as a pause would.
func disable(t *testing.T, name string) {
	t.Helper()
	c := scheduler.NewFromConfig(mototest.Config(t))
	ctx := context.Background()
	got, err := c.GetSchedule(ctx, &scheduler.GetScheduleInput{Name: &name})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.UpdateSchedule(ctx, &scheduler.UpdateScheduleInput{Name: &name, ScheduleExpression: got.ScheduleExpression,
		FlexibleTimeWindow: got.FlexibleTimeWindow, Target: got.Target, State: schedtypes.ScheduleStateDisabled}); err != nil {
		t.Fatal(err)
	}
}

// stackTemplate is a plain CloudFormation stand-in for the deployed SAM
// template (moto cannot run the SAM transform), under its output names.
const stackTemplate = `{"Resources": {
  "Role": {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": {"Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}}},
  "PollerFunction": {"Type": "AWS::Lambda::Function", "Properties": {"Runtime": "provided.al2023", "Handler": "bootstrap",
    "Role": {"Fn::GetAtt": ["Role", "Arn"]}, "Code": {"ZipFile": "bootstrap"},
    "Environment": {"Variables": {"FNO_BASE_URL": "https://127.0.0.1:1", "FNO_TENANT_ID": "t", "FNO_CLIENT_ID": "c",
      "FNO_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:not-there-AbCdEf"}}}},
  "DataBucket": {"Type": "AWS::S3::Bucket", "Properties": {"VersioningConfiguration": {"Status": "Enabled"}}},
  "ImportDLQ": {"Type": "AWS::SQS::Queue", "Properties": {"FifoQueue": true, "QueueName": "NAME-imports-dlq.fifo"}},
  "ImportQueue": {"Type": "AWS::SQS::Queue", "Properties": {"FifoQueue": true, "QueueName": "NAME-imports.fifo"}}},
 "Outputs": {"DataBucketName": {"Value": {"Ref": "DataBucket"}}, "ImportQueueUrl": {"Value": {"Ref": "ImportQueue"}},
  "ImportDLQUrl": {"Value": {"Ref": "ImportDLQ"}}, "PollerFunctionArn": {"Value": {"Fn::GetAtt": ["PollerFunction", "Arn"]}}}}`

// TestDoctorFromStack: with --stack, doctor checks the stack itself and
// the parts its outputs name, and the F&O settings of the poller's
// environment (here a secret that does not exist).
func TestDoctorFromStack(t *testing.T) {
	ctx := context.Background()
	name := mototest.Name("s3fno")
	cf := cloudformation.NewFromConfig(mototest.Config(t))
	if _, err := cf.CreateStack(ctx, &cloudformation.CreateStackInput{StackName: &name,
		TemplateBody: aws.String(strings.ReplaceAll(stackTemplate, "NAME", name))}); err != nil {
		t.Fatal(err)
	}
	out, err := cf.DescribeStacks(ctx, &cloudformation.DescribeStacksInput{StackName: &name})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range out.Stacks[0].Outputs { // moto's CloudFormation leaves versioning off
		if aws.ToString(o.OutputKey) == "DataBucketName" {
			if _, err := mototest.S3(t).PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: o.OutputValue,
				VersioningConfiguration: &s3types.VersioningConfiguration{Status: s3types.BucketVersioningStatusEnabled}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	r := &rig{t: t, env: map[string]string{"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_ENDPOINT_URL": mototest.Endpoint(t)}}
	r.saveEnv()
	code, rep, checks := runDoctor(t, r, "--stack", name)
	if c := checks["stack "+name]; c.Result != doctor.OK || c.Detail != "CREATE_COMPLETE" {
		t.Errorf("stack check: %+v", c)
	}
	for _, n := range []string{"import queue", "import dead-letter queue", "poller function", "import dead-letter queue empty"} {
		if checks[n].Result != doctor.OK {
			t.Errorf("%s: %+v", n, checks[n])
		}
	}
	if got := failing(rep); code != cli.ExitProblems || len(got) != 1 || !strings.HasPrefix(got[0], "secret arn:") {
		t.Errorf("exit %d, failed %v: %+v", code, got, rep.Checks)
	}
}
