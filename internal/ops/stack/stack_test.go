package stack_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	cfntypes "github.com/aws/aws-sdk-go-v2/service/cloudformation/types"

	"github.com/fno-bridge/s3-fno/internal/local/mototest"
	"github.com/fno-bridge/s3-fno/internal/local/pipelinetest"
	"github.com/fno-bridge/s3-fno/internal/ops/stack"
)

func TestMain(m *testing.M) { pipelinetest.Main(m) }

// stackTemplate is a plain CloudFormation stand-in for the SAM template
// (moto cannot run the SAM transform): the resources s3fno looks for,
// under the template's output names, and a poller function whose
// environment holds the routes and F&O settings.
const stackTemplate = `{
 "Resources": {
  "Role": {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": {"Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}}},
  "PollerFunction": {"Type": "AWS::Lambda::Function", "Properties": {"Runtime": "provided.al2023", "Handler": "bootstrap",
    "Role": {"Fn::GetAtt": ["Role", "Arn"]}, "Code": {"ZipFile": "bootstrap"},
    "Environment": {"Variables": {"ROUTES": "[{\"route\":\"customers\",\"activityId\":\"11111111-1111-4111-8111-111111111111\",\"entity\":\"Customer groups\"}]",
      "FNO_BASE_URL": "https://contoso.operations.dynamics.com", "FNO_TENANT_ID": "t", "FNO_CLIENT_ID": "c",
      "FNO_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:fno-AbCdEf"}}}},
  "DataBucket": {"Type": "AWS::S3::Bucket", "Properties": {"VersioningConfiguration": {"Status": "Enabled"}}},
  "ImportDLQ": {"Type": "AWS::SQS::Queue", "Properties": {"FifoQueue": true, "QueueName": "NAME-imports-dlq.fifo"}},
  "ImportQueue": {"Type": "AWS::SQS::Queue", "Properties": {"FifoQueue": true, "QueueName": "NAME-imports.fifo"}},
  "AlarmTopic": {"Type": "AWS::SNS::Topic"}
 },
 "Outputs": {
  "DataBucketName": {"Value": {"Ref": "DataBucket"}},
  "ImportQueueUrl": {"Value": {"Ref": "ImportQueue"}},
  "ImportDLQUrl": {"Value": {"Ref": "ImportDLQ"}},
  "NotifyTopicArn": {"Value": {"Ref": "AlarmTopic"}},
  "PollerFunctionArn": {"Value": {"Fn::GetAtt": ["PollerFunction", "Arn"]}}
 }
}`

// envFile writes vars as an env file in the form make invoke reads.
func envFile(t *testing.T, sections map[string]map[string]string) string {
	t.Helper()
	b, _ := json.Marshal(sections)
	p := filepath.Join(t.TempDir(), "env.json")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestOpenFromCloudFormation: --stack finds the bucket, queues and topic
// by the template's outputs and the functions' settings in the poller's
// environment; an env file and flags override, in that order.
func TestOpenFromCloudFormation(t *testing.T) {
	ctx := context.Background()
	name := mototest.Name("s3fno")
	cf := cloudformation.NewFromConfig(mototest.Config(t))
	if _, err := cf.CreateStack(ctx, &cloudformation.CreateStackInput{StackName: &name,
		TemplateBody: aws.String(strings.ReplaceAll(stackTemplate, "NAME", name))}); err != nil {
		t.Fatal(err)
	}
	creds := envFile(t, map[string]map[string]string{"Parameters": {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}})
	s, c, err := stack.Open(ctx, stack.Flags{Stack: name, EnvFile: creds, EndpointURL: mototest.Endpoint(t)})
	if err != nil {
		t.Fatal(err)
	}
	if s.Name != name || s.Status != string(cfntypes.StackStatusCreateComplete) || !strings.HasPrefix(s.Bucket, name) ||
		!strings.HasSuffix(s.ImportQueue, name+"-imports.fifo") || !strings.HasSuffix(s.ImportDLQ, name+"-imports-dlq.fifo") ||
		!strings.HasPrefix(s.Topic, "arn:aws:sns:") || !strings.Contains(s.Functions["poller"], "function:") {
		t.Errorf("from the stack: %+v", s)
	}
	st, ok := s.FnO()
	if !ok || st.BaseURL != "https://contoso.operations.dynamics.com" || st.SecretARN == "" {
		t.Errorf("F&O settings from the poller's environment: %+v (%v)", st, ok)
	}
	doc, err := s.Document(ctx, c.S3)
	if err != nil || len(doc.Routes.All()) != 1 || doc.Routes.All()[0].Name != "customers" {
		t.Errorf("routes: %v %v", doc, err)
	}

	over := envFile(t, map[string]map[string]string{"Parameters": {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
		"BUCKET": "from-env-file", "FNO_BASE_URL": "https://other.example"}, "PollerFunction": {"IMPORT_DLQ_URL": "https://dlq"}})
	s, _, err = stack.Open(ctx, stack.Flags{Stack: name, EnvFile: over, EndpointURL: mototest.Endpoint(t), Bucket: "from-flag"})
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := s.FnO(); s.Bucket != "from-flag" || s.ImportDLQ != "https://dlq" || st.BaseURL != "https://other.example" {
		t.Errorf("overrides: bucket %q, DLQ %q, F&O %q", s.Bucket, s.ImportDLQ, st.BaseURL)
	}

	if _, _, err := stack.Open(ctx, stack.Flags{Stack: "no-such-stack", EnvFile: creds, EndpointURL: mototest.Endpoint(t)}); err == nil ||
		!strings.Contains(err.Error(), "no-such-stack") {
		t.Errorf("an unknown stack: %v", err)
	}
	if _, _, err := stack.Open(ctx, stack.Flags{Functions: []string{"pollr=x"}}); err == nil || !strings.Contains(err.Error(), "--function") {
		t.Errorf("a bad --function: %v", err)
	}
}

// TestReadEnvFile: the sectioned form (functions over Parameters) and a
// flat object are read; anything else is an error naming the file.
func TestReadEnvFile(t *testing.T) {
	p := envFile(t, map[string]map[string]string{"Parameters": {"A": "1", "B": "1"}, "PollerFunction": {"B": "2"}})
	env, err := stack.ReadEnvFile(p)
	if err != nil || env["A"] != "1" || env["B"] != "2" {
		t.Errorf("sections: %v %v", env, err)
	}
	flat := filepath.Join(t.TempDir(), "flat.json")
	os.WriteFile(flat, []byte(`{"BUCKET":"b"}`), 0o600)
	if env, err := stack.ReadEnvFile(flat); err != nil || env["BUCKET"] != "b" {
		t.Errorf("flat: %v %v", env, err)
	}
	bad := filepath.Join(t.TempDir(), "bad.json")
	os.WriteFile(bad, []byte(`[1,2]`), 0o600)
	if _, err := stack.ReadEnvFile(bad); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("bad: %v", err)
	}
}

// TestOpenFromEnvFile: an env file (as the local runner writes it) names
// the queues, the export schedules' group, role and dead-letter queue and
// the functions (<ROLE>_FUNCTION); the rest is the functions' environment;
// --function overrides a function it names.
func TestOpenFromEnvFile(t *testing.T) {
	p := envFile(t, map[string]map[string]string{"Parameters": {"BUCKET": "b", "ARRIVALS_QUEUE_URL": "http://q/arrivals",
		"EXPORT_SCHEDULE_GROUP": "local-exports", "EXPORT_SCHEDULE_ROLE_ARN": "arn:aws:iam::123456789012:role/r",
		"SCHEDULE_DLQ_ARN": "arn:aws:sqs:us-east-1:123456789012:local-schedules-dlq", "DEQUEUE_FUNCTION": "arn:aws:lambda:us-east-1:123456789012:function:d",
		"POLLER_FUNCTION": "p", "FNO_BASE_URL": "https://127.0.0.1:8443", "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}})
	s, _, err := stack.Open(context.Background(), stack.Flags{EnvFile: p, Functions: []string{"poller=from-flag"}})
	if err != nil {
		t.Fatal(err)
	}
	if s.Bucket != "b" || s.ArrivalsQueue != "http://q/arrivals" || s.ExportScheduleGroup != "local-exports" ||
		s.ExportScheduleRole != "arn:aws:iam::123456789012:role/r" || !strings.HasSuffix(s.ScheduleDLQArn, "local-schedules-dlq") ||
		s.Functions["dequeue"] != "arn:aws:lambda:us-east-1:123456789012:function:d" || s.Functions["poller"] != "from-flag" {
		t.Errorf("from the env file: %+v", s)
	}
	if _, ok := s.Env["DEQUEUE_FUNCTION"]; ok || s.Env["FNO_BASE_URL"] != "https://127.0.0.1:8443" {
		t.Errorf("the functions' environment: %v", s.Env)
	}
}
