package samtemplate_test

// The policy test (issue 14): the template is translated as CloudFormation
// would on deploy (aws-sam-translator, so whatever SAM adds for event
// sources is in it), the policies of every role are evaluated with
// iameval_test.go's evaluator, and each function's verdicts are held to a
// table: what it must be allowed (or it breaks) and nothing more, for a
// matrix of S3 keys of every kind the layout builds, bucket-level actions,
// queues, the secret, the KMS key, logs and invocations. It runs with and
// without a customer-managed KMS key.

import (
	"bytes"
	"fmt"
	"maps"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fno-bridge/s3-fno/internal/local/samtemplate"
	"github.com/fno-bridge/s3-fno/internal/shared/layout"
)

const (
	testRegion  = "us-east-1"
	testAccount = "123456789012"
	testKey     = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
	otherKey    = "arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000000"
	otherSecret = "arn:aws:secretsmanager:us-east-1:123456789012:secret:someone-else-XyZ123"
)

// translate runs the SAM transform offline with the given parameter values
// and parses the CloudFormation it produces.
func translate(t *testing.T, params map[string]string) *samtemplate.Template {
	t.Helper()
	py := python(t, "samtranslator")
	args := []string{"testdata/sam_translate.py", templatePath}
	for _, k := range slices.Sorted(maps.Keys(params)) {
		args = append(args, k+"="+params[k])
	}
	cmd := exec.Command(py, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("the SAM transform failed: %v\n%s", err, stderr.String())
	}
	tpl, err := samtemplate.Parse(out)
	if err != nil {
		t.Fatalf("parse the transformed template: %v", err)
	}
	return tpl
}

// deployed gives every resource of a translated template the Ref and
// attributes it would have once deployed (names as CloudFormation makes
// them up), so that policies resolve to ARNs.
func deployed(t *testing.T, tpl *samtemplate.Template, vals samtemplate.Values) samtemplate.Values {
	t.Helper()
	vals.Region, vals.AccountID, vals.StackName = testRegion, testAccount, "s3-fno"
	vals.Resources, vals.Attributes = map[string]string{}, map[string]string{}
	ids := slices.Sorted(maps.Keys(tpl.Resources))
	for _, id := range ids {
		r := tpl.Resources[id]
		switch r.Type {
		case "AWS::S3::Bucket":
			name := mustEvalString(t, tpl, r.Properties["BucketName"], vals)
			vals.Resources[id] = name
			vals.Attributes[id+".Arn"] = "arn:aws:s3:::" + name
		case "AWS::SQS::Queue":
			name := "s3-fno-" + id + "-1A2B3C4D5E6F"
			if r.Properties["QueueName"] != nil {
				name = mustEvalString(t, tpl, r.Properties["QueueName"], vals)
			}
			vals.Resources[id] = fmt.Sprintf("https://sqs.%s.amazonaws.com/%s/%s", testRegion, testAccount, name)
			vals.Attributes[id+".Arn"] = fmt.Sprintf("arn:aws:sqs:%s:%s:%s", testRegion, testAccount, name)
			vals.Attributes[id+".QueueName"] = name
		case "AWS::Lambda::Function":
			name := "s3-fno-" + id + "-AbCdEfGh1234"
			vals.Resources[id] = name
			vals.Attributes[id+".Arn"] = fmt.Sprintf("arn:aws:lambda:%s:%s:function:%s", testRegion, testAccount, name)
		case "AWS::CloudWatch::Alarm":
			vals.Resources[id] = "s3-fno-" + id + "-POIUY0987"
			vals.Attributes[id+".Arn"] = fmt.Sprintf("arn:aws:cloudwatch:%s:%s:alarm:s3-fno-%s-POIUY0987", testRegion, testAccount, id)
		case "AWS::SNS::Topic":
			vals.Resources[id] = fmt.Sprintf("arn:aws:sns:%s:%s:s3-fno-%s-ZXCVB6789", testRegion, testAccount, id)
		case "AWS::IAM::Role":
			name := "s3-fno-" + id + "-QWERTY123456"
			vals.Resources[id] = name
			vals.Attributes[id+".Arn"] = fmt.Sprintf("arn:aws:iam::%s:role/%s", testAccount, name)
		}
	}
	for _, id := range ids { // log groups are named after functions
		if r := tpl.Resources[id]; r.Type == "AWS::Logs::LogGroup" {
			name := mustEvalString(t, tpl, r.Properties["LogGroupName"], vals)
			vals.Resources[id] = name
			vals.Attributes[id+".Arn"] = fmt.Sprintf("arn:aws:logs:%s:%s:log-group:%s:*", testRegion, testAccount, name)
		}
	}
	return vals
}

// knownManaged are the AWS managed policies SAM may attach to a role it
// generates, with their statements, so that they are evaluated like the
// rest (any other managed policy fails the test: it cannot be judged).
var knownManaged = map[string]map[string]any{
	"service-role/AWSLambdaBasicExecutionRole": {"Version": "2012-10-17", "Statement": []any{
		map[string]any{"Effect": "Allow", "Action": []any{"logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"}, "Resource": "*"}}},
	"service-role/AWSLambdaSQSQueueExecutionRole": {"Version": "2012-10-17", "Statement": []any{
		map[string]any{"Effect": "Allow", "Action": []any{"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes",
			"logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"}, "Resource": "*"}}},
}

// roleStatements collects, per role, every statement that applies to it:
// its inline policies, its managed policies and the policy resources that
// name it. It also returns each role's trust policy.
func roleStatements(t *testing.T, tpl *samtemplate.Template, vals samtemplate.Values) (map[string][]iamStatement, map[string][]iamStatement) {
	t.Helper()
	stmts, trust := map[string][]iamStatement{}, map[string][]iamStatement{}
	add := func(role, from string, doc any) {
		s, err := parseStatements(from, doc)
		if err != nil {
			t.Fatal(err)
		}
		stmts[role] = append(stmts[role], s...)
	}
	for _, id := range slices.Sorted(maps.Keys(tpl.Resources)) {
		r := tpl.Resources[id]
		if r.Condition != "" {
			ok, err := tpl.Condition(r.Condition, vals)
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				continue
			}
		}
		switch r.Type {
		case "AWS::IAM::Role":
			p := mustEval(t, tpl, r.Properties, vals).(map[string]any)
			for _, pol := range asList(p["Policies"]) {
				pm := pol.(map[string]any)
				add(id, id+"/"+strOf(pm["PolicyName"]), pm["PolicyDocument"])
			}
			for _, arn := range stringsOf(p["ManagedPolicyArns"]) {
				_, name, _ := strings.Cut(arn, ":policy/")
				doc, ok := knownManaged[name]
				if !ok {
					t.Errorf("%s: managed policy %s cannot be evaluated here", id, arn)
					continue
				}
				add(id, id+"/"+name, doc)
			}
			ts, err := parseTrust(id, p["AssumeRolePolicyDocument"])
			if err != nil {
				t.Fatal(err)
			}
			trust[id] = ts
		case "AWS::IAM::RolePolicy":
			role := refName(r.Properties["RoleName"])
			if role == "" {
				t.Fatalf("%s: RoleName %v is not a Ref of a role in the template", id, r.Properties["RoleName"])
			}
			add(role, id, mustEval(t, tpl, r.Properties["PolicyDocument"], vals))
		case "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy":
			if r.Properties["Users"] != nil || r.Properties["Groups"] != nil {
				t.Errorf("%s: attached to users or groups", id)
			}
			for _, ref := range asList(r.Properties["Roles"]) {
				role := refName(ref)
				if role == "" {
					t.Fatalf("%s: role %v is not a Ref of a role in the template", id, ref)
				}
				add(role, id, mustEval(t, tpl, r.Properties["PolicyDocument"], vals))
			}
		default:
			if strings.HasPrefix(r.Type, "AWS::IAM::") {
				t.Errorf("%s: %s is not evaluated by the policy test", id, r.Type)
			}
		}
	}
	return stmts, trust
}

// parseTrust reads a trust policy (which, unlike an identity policy, names
// a Principal): the evaluator sees it as statements on sts:AssumeRole with
// the principal's service as the resource.
func parseTrust(from string, doc any) ([]iamStatement, error) {
	d, _ := doc.(map[string]any)
	var out []iamStatement
	for i, s := range asList(d["Statement"]) {
		m, _ := s.(map[string]any)
		p, _ := m["Principal"].(map[string]any)
		services := stringsOf(p["Service"])
		if len(p) != 1 || len(services) == 0 {
			return nil, fmt.Errorf("%s: trust statement %d trusts %v, want service principals only", from, i, m["Principal"])
		}
		c := map[string]any{}
		for k, v := range m {
			if k != "Principal" {
				c[k] = v
			}
		}
		c["Resource"] = asAnyList(services)
		st, err := parseStatements(from+"/trust", map[string]any{"Version": "2012-10-17", "Statement": []any{c}})
		if err != nil {
			return nil, err
		}
		out = append(out, st...)
	}
	return out, nil
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}

func asAnyList(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// stack is one translated, resolved template: who holds which statements.
type stack struct {
	tpl       *samtemplate.Template
	vals      samtemplate.Values
	bucket    string            // the data bucket's ARN
	roleOf    map[string]string // principal (function or schedule logical ID) -> role logical ID
	stmts     map[string][]iamStatement
	trust     map[string][]iamStatement
	functions []string // function logical IDs
	schedules []string // schedule logical IDs
}

func loadStack(t *testing.T, kmsKey string) *stack {
	t.Helper()
	params := with(fnoValues, "KmsKeyArn", kmsKey).Parameters
	tpl := translate(t, params)
	vals := deployed(t, tpl, samtemplate.Values{Parameters: params})
	s := &stack{tpl: tpl, vals: vals, roleOf: map[string]string{}, bucket: vals.Attributes["DataBucket.Arn"]}
	s.stmts, s.trust = roleStatements(t, tpl, vals)
	for _, id := range slices.Sorted(maps.Keys(tpl.Resources)) {
		r := tpl.Resources[id]
		switch r.Type {
		case "AWS::Lambda::Function":
			role := getAtt(r.Properties["Role"])
			if !strings.HasSuffix(role, ".Arn") {
				t.Fatalf("%s: Role %v is not a role of the template", id, r.Properties["Role"])
			}
			s.roleOf[id] = strings.TrimSuffix(role, ".Arn")
			s.functions = append(s.functions, id)
		case "AWS::Scheduler::Schedule":
			target, _ := r.Properties["Target"].(map[string]any)
			role := getAtt(target["RoleArn"])
			if !strings.HasSuffix(role, ".Arn") {
				t.Fatalf("%s: RoleArn %v is not a role of the template", id, target["RoleArn"])
			}
			s.roleOf[id] = strings.TrimSuffix(role, ".Arn")
			s.schedules = append(s.schedules, id)
		case "AWS::Scheduler::ScheduleGroup":
			// Its schedules are the operator tool's, made with the role
			// the stack gives it as ExportScheduleRoleArn.
			out, _ := tpl.Outputs["ExportScheduleRoleArn"].(map[string]any)
			role := getAtt(out["Value"])
			if !strings.HasSuffix(role, ".Arn") {
				t.Fatalf("%s: output ExportScheduleRoleArn %v is not a role of the template", id, out)
			}
			s.roleOf[id] = strings.TrimSuffix(role, ".Arn")
			s.schedules = append(s.schedules, id)
		case "AWS::Lambda::Permission":
			t.Errorf("%s: a resource policy lets %v invoke %v; nothing but the schedules' roles and the event source mappings should",
				id, r.Properties["Principal"], r.Properties["FunctionName"])
		}
	}
	return s
}

// allowed judges a request for a principal (function or schedule).
func (s *stack) allowed(who string, r iamRequest) (bool, []string) {
	return decide(s.stmts[s.roleOf[who]], r)
}

// objectGrant is what a function may do to the keys a pattern matches.
type objectGrant struct {
	actions []string
	keys    []string // IAM wildcards on the key
}

var (
	// Move a file out of inbound/ by its exact version.
	moveFromInbound = []string{"s3:GetObjectVersion", "s3:GetObjectVersionTagging", "s3:DeleteObjectVersion"}
	// File a copy (and documents, error files) under a destination prefix,
	// HEADing the candidate keys first.
	fileInto = []string{"s3:GetObject", "s3:PutObject", "s3:PutObjectTagging", "s3:AbortMultipartUpload"}
	// Every function notifies, each event once: a conditional put of a
	// marker comes first.
	notifyOnce = objectGrant{[]string{"s3:PutObject"}, []string{"_state/notified/*"}}
	// The import functions point the where-index at each file they file.
	whereIndex = objectGrant{[]string{"s3:PutObject"}, []string{"_state/where/*"}}
	// The import functions follow the configuration document, and may go
	// back to an earlier version of it.
	readConfig = objectGrant{[]string{"s3:GetObject", "s3:GetObjectVersion"}, []string{"_config/config.json"}}
	// The enqueue function wraps plain files in their route's package
	// template.
	readTemplates = objectGrant{[]string{"s3:GetObject"}, []string{"_config/templates/*"}}
	// Pauses: the release pass reads them; a failed file may set one.
	readPauses  = objectGrant{[]string{"s3:GetObject"}, []string{"_state/paused/*"}}
	setPauses   = objectGrant{[]string{"s3:PutObject"}, []string{"_state/paused/*"}}
	statusBoard = objectGrant{[]string{"s3:GetObject", "s3:PutObject", "s3:DeleteObject"}, []string{"_state/status/imports.json"}}
	jobStatus   = objectGrant{[]string{"s3:PutObject"}, []string{"_state/status/jobs/*"}}
)

// wantObjects is the table of object permissions: exactly what each
// function needs (internal/imports/..., internal/exports/...), nothing else.
var wantObjects = map[string][]objectGrant{
	"RouterFunction": {
		{moveFromInbound, []string{"inbound/*"}},
		{fileInto, []string{"rejected/_unrouted/*"}},
		{[]string{"s3:PutObject"}, []string{"rejected/_malformed/*"}},
		notifyOnce,
		whereIndex,
		readConfig,
	},
	"EnqueueFunction": {
		{moveFromInbound, []string{"inbound/*"}},
		{fileInto, []string{"rejected/*", "failed/*"}},
		{[]string{"s3:GetObject", "s3:PutObject", "s3:DeleteObject"}, []string{"_state/markers/*"}},
		{[]string{"s3:PutObject"}, []string{"_state/ledger/*"}},
		{[]string{"s3:PutObject", "s3:DeleteObject"}, []string{"_state/released/*"}},
		{[]string{"s3:GetObject", "s3:PutObject", "s3:DeleteObject"}, []string{"_state/packages/*"}}, // package import locks
		notifyOnce,
		whereIndex,
		readConfig,
		readTemplates,
		readPauses, setPauses,
	},
	"PollerFunction": {
		{moveFromInbound, []string{"inbound/*"}},
		{[]string{"s3:PutObject", "s3:DeleteObject"}, []string{"inbound/*.stuck.json"}},
		{fileInto, []string{"processed/*", "failed/*", "rejected/_unrouted/*"}},
		{[]string{"s3:GetObject", "s3:GetObjectTagging", "s3:PutObject", "s3:DeleteObject"}, []string{"_state/ledger/*"}},
		{[]string{"s3:GetObject", "s3:PutObject", "s3:PutObjectTagging"}, []string{"_state/quarantine/ledger/*"}},
		{[]string{"s3:GetObject", "s3:DeleteObject"}, []string{"_state/markers/*"}},
		{[]string{"s3:DeleteObject"}, []string{"_state/released/*"}},
		{[]string{"s3:GetObject", "s3:DeleteObject"}, []string{"_state/packages/*"}}, // package import locks, removed when final
		{[]string{"s3:GetObject", "s3:PutObject", "s3:DeleteObject"}, []string{"_state/sweep.json", "_state/poller-lease.json"}},
		notifyOnce,
		whereIndex,
		readConfig,
		setPauses, statusBoard,
	},
	"DequeueFunction": {
		{[]string{"s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"}, []string{"outbound/*"}},
		{[]string{"s3:GetObject", "s3:GetObjectTagging", "s3:PutObject"}, []string{"_state/exports/*"}},
		{[]string{"s3:GetObject", "s3:PutObject", "s3:PutObjectTagging"}, []string{"_state/quarantine/exports/*"}},
		{[]string{"s3:PutObject"}, []string{"failed/_exports/*"}},
		notifyOnce,
		jobStatus,
	},
}

// noPrefix stands for a request that carries no s3:prefix at all: a
// listing without one, and the check S3 makes before it answers 404 to a
// GET or HEAD of a missing key.
const noPrefix = "(none)"

// wantLists is, per function and listing action, the s3:prefix values it
// may list with (IAM wildcards; noPrefix: requests without a prefix).
var wantLists = map[string]map[string][]string{
	"RouterFunction":  {"s3:ListBucket": {noPrefix}, "s3:ListBucketVersions": {layout.DefaultConfigKey}},
	"EnqueueFunction": {"s3:ListBucket": {noPrefix, "_state/released/*"}, "s3:ListBucketVersions": {"inbound/*", layout.DefaultConfigKey}},
	"PollerFunction": {"s3:ListBucket": {noPrefix, "_state/ledger/*", "_state/markers/*", "_state/released/*", "_state/packages/*"},
		"s3:ListBucketVersions": {"inbound/*", layout.DefaultConfigKey}},
	"DequeueFunction": {"s3:ListBucket": {noPrefix, "outbound/*"}},
}

// wantQueues is, per principal, queue logical ID -> the SQS actions it may
// take there.
var wantQueues = map[string]map[string][]string{
	"RouterFunction": {
		"ArrivalsQueue": {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"}, // its event source
		"ImportQueue":   {"sqs:SendMessage"},                                                   // release requests
	},
	"EnqueueFunction": {"ImportQueue": {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:SendMessage"}},
	"PollerFunction": {
		"ImportQueue": {"sqs:SendMessage"},                                   // the sweep's release requests
		"ImportDLQ":   {"sqs:ReceiveMessage", "sqs:ChangeMessageVisibility"}, // telling of dead letters, which stay (visible) for a redrive
		"ScheduleDLQ": {"sqs:SendMessage"},                                   // a failed run, as its on-failure destination
	},
	"DequeueFunction":    {"ScheduleDLQ": {"sqs:SendMessage"}}, // a failed run, as its on-failure destination
	"PollerFunctionPoll": {"ScheduleDLQ": {"sqs:SendMessage"}},
	"ExportSchedules":    {"ScheduleDLQ": {"sqs:SendMessage"}},
}

// wantSecret: the functions that call F&O read its secret.
var wantSecret = map[string]bool{"EnqueueFunction": true, "PollerFunction": true, "DequeueFunction": true}

// wantInvoke: what each schedule may invoke.
var wantInvoke = map[string]string{
	"PollerFunctionPoll": "PollerFunction",
	"ExportSchedules":    "DequeueFunction",
}

// wantLogGroup: each function writes to its own log group only.
var wantLogGroup = map[string]string{
	"RouterFunction": "RouterLogGroup", "EnqueueFunction": "EnqueueLogGroup",
	"PollerFunction": "PollerLogGroup", "DequeueFunction": "DequeueLogGroup",
}

// sampleKeys are keys of every kind the layout builds, and some it does
// not. Built with internal/shared/layout, so the table stays true to the
// keys the code writes.
func sampleKeys() []string {
	l := layout.Default()
	day := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	ledgerKey := l.LedgerPrefix() + "1772359200/abc.json"
	keys := []string{
		l.InboundKey("customers", "a.csv"),
		l.InboundKey("customers", "sub/b.csv"),
		l.Inbound + "direct.csv",
		l.InboundKey("customers", "a.csv") + layout.StuckSuffix,
		l.ProcessedKey("customers", day, "a.csv"),
		l.ProcessedKey("customers", day, "a.csv") + layout.ResultSuffix,
		l.FailedKey("customers", day, "a.csv"),
		l.FailedKey("customers", day, "a.csv") + ".staging-errors.csv",
		l.FailedExportKey("vendors", day, "0f8fad5b-vendors"+layout.ResultSuffix),
		l.RejectedKey("customers", day, "a.csv") + layout.ReasonSuffix,
		l.RejectedKey("", day, "customers/a.csv"),
		l.RejectedKey("_malformed", day, "0f8fad5b.event"),
		"outbound/customer-groups/2026/03/01/0f8fad5b-groups.csv",
		"outbound/vendor-package/2026/03/01/0f8fad5b-pkg/Vendors.xml",
		l.MarkerKey("abc"),
		l.ReleasedKey("customers", "abc"),
		ledgerKey,
		l.QuarantineKey(ledgerKey),
		l.State + "exports/customer-groups/0f8fad5b.json",
		l.State + "exports/customer-groups/0f8fad5b.missing.json",
		l.State + "quarantine/exports/customer-groups/0f8fad5b.json",
		l.SweepStateKey(),
		l.PollerLeaseKey(),
		l.PackageLockKey("environment"),
		l.PackageLockKey("dataProject:opening balances"),
		l.State + "notified/x.json",
		layout.DefaultConfigKey,
		"_config/other.json",
		layout.TemplateKey("customer-groups", "Manifest.xml"),
		layout.TemplateKey("customer-groups", "PackageHeader.xml"),
		"_config/templates.json",
		l.PausedKey("customers"),
		l.BoardKey(),
		l.State + "status/other.json",
		l.JobStatusPrefix() + "groups/last-run.json",
		l.WhereKey("a.csv", "abc"),
		l.State + "other.json",
		"inboundx/customers/a.csv",
		"outbound-other/x.csv",
		"other/a.csv",
		"a.csv",
	}
	return keys
}

// objectActions are the S3 object actions checked on every sample key.
var objectActions = []string{
	"s3:GetObject", "s3:GetObjectVersion", "s3:GetObjectTagging", "s3:GetObjectVersionTagging", "s3:GetObjectAcl",
	"s3:GetObjectVersionAcl", "s3:GetObjectAttributes", "s3:GetObjectVersionAttributes", "s3:GetObjectRetention",
	"s3:GetObjectLegalHold", "s3:PutObject", "s3:PutObjectTagging", "s3:PutObjectVersionTagging", "s3:PutObjectAcl",
	"s3:PutObjectVersionAcl", "s3:PutObjectRetention", "s3:PutObjectLegalHold", "s3:DeleteObject", "s3:DeleteObjectVersion",
	"s3:DeleteObjectTagging", "s3:DeleteObjectVersionTagging", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts",
	"s3:RestoreObject", "s3:BypassGovernanceRetention", "s3:ReplicateObject", "s3:ReplicateDelete", "s3:ObjectOwnerOverrideToBucketOwner",
}

// bucketActions are bucket-level actions no function may take (the
// listings are checked apart).
var bucketActions = []string{
	"s3:ListBucketMultipartUploads", "s3:GetBucketPolicy", "s3:PutBucketPolicy", "s3:DeleteBucketPolicy", "s3:DeleteBucket",
	"s3:PutLifecycleConfiguration", "s3:GetLifecycleConfiguration", "s3:PutBucketVersioning", "s3:PutBucketNotification",
	"s3:PutEncryptionConfiguration", "s3:PutBucketPublicAccessBlock", "s3:PutBucketOwnershipControls", "s3:PutBucketAcl",
	"s3:GetBucketLocation", "s3:PutBucketTagging", "s3:PutReplicationConfiguration",
}

// listPrefixes are the s3:prefix values listings are checked with.
var listPrefixes = []string{noPrefix, "", "inbound/", "inbound/customers/", "processed/", "failed/", "rejected/",
	"rejected/_unrouted/", "outbound/", "outbound/customer-groups/2026/03/01/", "_state/", "_state/ledger/",
	"_state/markers/", "_state/released/", "_state/released/customers/", "_state/packages/", "_state/exports/", "_state/quarantine/", "other/",
	"_config/", layout.DefaultConfigKey, layout.TemplatesPrefix}

func TestPolicies(t *testing.T) {
	for _, tc := range []struct{ name, key string }{{"AWS-managed encryption", ""}, {"customer-managed KMS key", testKey}} {
		t.Run(tc.name, func(t *testing.T) {
			s := loadStack(t, tc.key)
			checkShape(t, s)
			checkObjects(t, s)
			checkListings(t, s)
			checkQueues(t, s)
			checkSecretLogsInvoke(t, s)
			checkTopic(t, s)
			checkKMS(t, s, tc.key)
			checkExamples(t, s, tc.key)
		})
	}
}

// checkShape: one role per function, the schedules' own, nothing generated
// beside them; no wildcard action, no "*" resource, no NotAction or
// NotResource, no S3 grant on the whole bucket; each role trusted only by
// the service that uses it.
func checkShape(t *testing.T, s *stack) {
	t.Helper()
	if got := s.functions; !slices.Equal(got, []string{"DequeueFunction", "EnqueueFunction", "PollerFunction", "RouterFunction"}) {
		t.Errorf("functions %v", got)
	}
	if got := s.schedules; !slices.Equal(got, []string{"ExportSchedules", "PollerFunctionPoll"}) {
		t.Errorf("schedules %v", got)
	}
	used := map[string][]string{}
	for who, role := range s.roleOf {
		used[role] = append(used[role], who)
	}
	for _, f := range s.functions {
		if users := used[s.roleOf[f]]; len(users) != 1 {
			t.Errorf("%s shares its role %s with %v", f, s.roleOf[f], users)
		}
		if _, ok := s.trust[s.roleOf[f]]; !ok {
			t.Errorf("%s: role %s is not in the template", f, s.roleOf[f])
		}
	}
	for role := range s.trust {
		if len(used[role]) == 0 {
			t.Errorf("role %s is used by no function or schedule", role)
		}
	}
	for role, stmts := range s.stmts {
		for _, st := range stmts {
			if st.Effect != "Allow" {
				continue
			}
			for _, a := range st.Action {
				if strings.ContainsAny(a, "*?") {
					t.Errorf("%s: action %q is a wildcard", st.From, a)
				}
			}
			if len(st.NotAction) > 0 || len(st.NotResource) > 0 {
				t.Errorf("%s: NotAction/NotResource", st.From)
			}
			for _, r := range st.Resource {
				if r == "*" || r == s.bucket+"/*" || r == s.bucket+"*" {
					t.Errorf("%s (%s): resource %q", st.From, role, r)
				}
			}
		}
	}
	for role, stmts := range s.trust {
		service := "lambda.amazonaws.com"
		if slices.Contains(s.schedules, s.whoUses(role)) {
			service = "scheduler.amazonaws.com"
		}
		ok, _ := decide(stmts, iamRequest{Action: "sts:AssumeRole", Resource: service,
			Context: map[string]string{"aws:SourceAccount": testAccount}})
		if !ok {
			t.Errorf("%s: %s may not assume it", role, service)
		}
		for _, other := range []string{"lambda.amazonaws.com", "scheduler.amazonaws.com", "events.amazonaws.com", "ec2.amazonaws.com"} {
			if other == service {
				continue
			}
			if ok, _ := decide(stmts, iamRequest{Action: "sts:AssumeRole", Resource: other,
				Context: map[string]string{"aws:SourceAccount": testAccount}}); ok {
				t.Errorf("%s: %s may assume it too", role, other)
			}
		}
		if service == "scheduler.amazonaws.com" {
			if ok, _ := decide(stmts, iamRequest{Action: "sts:AssumeRole", Resource: service,
				Context: map[string]string{"aws:SourceAccount": "999999999999"}}); ok {
				t.Errorf("%s: EventBridge Scheduler of another account may assume it", role)
			}
		}
	}
}

// whoUses names a role's first user, for messages and the trust check.
func (s *stack) whoUses(role string) string {
	var users []string
	for who, r := range s.roleOf {
		if r == role {
			users = append(users, who)
		}
	}
	slices.Sort(users)
	if len(users) == 0 {
		return ""
	}
	return users[0]
}

func checkObjects(t *testing.T, s *stack) {
	t.Helper()
	who := append(append([]string{}, s.functions...), s.schedules...)
	for _, f := range who {
		for _, key := range sampleKeys() {
			for _, action := range objectActions {
				want := false
				for _, g := range wantObjects[f] {
					if slices.Contains(g.actions, action) && anyMatch(g.keys, key, false) {
						want = true
					}
				}
				r := iamRequest{Action: action, Resource: s.bucket + "/" + key}
				if got, why := s.allowed(f, r); got != want {
					t.Errorf("%s: %s %s: allowed %v, want %v (by %v)", f, action, key, got, want, why)
				}
			}
		}
		// The same keys in another bucket: never.
		for _, action := range objectActions {
			r := iamRequest{Action: action, Resource: "arn:aws:s3:::another-bucket/" + sampleKeys()[0]}
			if got, why := s.allowed(f, r); got {
				t.Errorf("%s: %s in another bucket allowed (by %v)", f, action, why)
			}
		}
	}
}

func checkListings(t *testing.T, s *stack) {
	t.Helper()
	for _, f := range append(append([]string{}, s.functions...), s.schedules...) {
		for _, action := range []string{"s3:ListBucket", "s3:ListBucketVersions"} {
			grants := wantLists[f][action]
			for _, p := range listPrefixes {
				r := iamRequest{Action: action, Resource: s.bucket}
				want := slices.Contains(grants, noPrefix)
				if p != noPrefix {
					r.Context = map[string]string{"s3:prefix": p}
					want = anyMatch(removeNoPrefix(grants), p, false)
				}
				if got, why := s.allowed(f, r); got != want {
					t.Errorf("%s: %s with s3:prefix %q: allowed %v, want %v (by %v)", f, action, p, got, want, why)
				}
			}
		}
		for _, action := range bucketActions {
			if got, why := s.allowed(f, iamRequest{Action: action, Resource: s.bucket}); got {
				t.Errorf("%s: %s on the bucket allowed (by %v)", f, action, why)
			}
		}
	}
}

func removeNoPrefix(ps []string) []string {
	var out []string
	for _, p := range ps {
		if p != noPrefix {
			out = append(out, p)
		}
	}
	return out
}

var sqsActions = []string{"sqs:SendMessage", "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes",
	"sqs:ChangeMessageVisibility", "sqs:PurgeQueue", "sqs:SetQueueAttributes", "sqs:DeleteQueue", "sqs:GetQueueUrl",
	"sqs:StartMessageMoveTask", "sqs:AddPermission", "sqs:TagQueue"}

func checkQueues(t *testing.T, s *stack) {
	t.Helper()
	var queues []string
	for _, id := range slices.Sorted(maps.Keys(s.tpl.Resources)) {
		if s.tpl.Resources[id].Type == "AWS::SQS::Queue" {
			queues = append(queues, id)
		}
	}
	if !slices.Equal(queues, []string{"ArrivalsDLQ", "ArrivalsQueue", "ImportDLQ", "ImportQueue", "ScheduleDLQ"}) {
		t.Errorf("queues %v", queues)
	}
	for _, f := range append(append([]string{}, s.functions...), s.schedules...) {
		for _, q := range append(queues, "Elsewhere") {
			arn := s.vals.Attributes[q+".Arn"]
			if q == "Elsewhere" {
				arn = fmt.Sprintf("arn:aws:sqs:%s:%s:another-queue", testRegion, testAccount)
			}
			for _, action := range sqsActions {
				want := slices.Contains(wantQueues[f][q], action)
				if got, why := s.allowed(f, iamRequest{Action: action, Resource: arn}); got != want {
					t.Errorf("%s: %s on %s: allowed %v, want %v (by %v)", f, action, q, got, want, why)
				}
			}
		}
		if got, why := s.allowed(f, iamRequest{Action: "sqs:ListQueues", Resource: "*"}); got {
			t.Errorf("%s: sqs:ListQueues allowed (by %v)", f, why)
		}
	}
}

func checkSecretLogsInvoke(t *testing.T, s *stack) {
	t.Helper()
	secret := fnoValues.Parameters["FnoSecretArn"]
	for _, f := range append(append([]string{}, s.functions...), s.schedules...) {
		for _, sec := range []string{secret, otherSecret} {
			for _, action := range []string{"secretsmanager:GetSecretValue", "secretsmanager:PutSecretValue",
				"secretsmanager:UpdateSecret", "secretsmanager:DeleteSecret", "secretsmanager:ListSecrets"} {
				want := wantSecret[f] && sec == secret && action == "secretsmanager:GetSecretValue"
				if got, why := s.allowed(f, iamRequest{Action: action, Resource: sec}); got != want {
					t.Errorf("%s: %s on %s: allowed %v, want %v (by %v)", f, action, sec, got, want, why)
				}
			}
		}
		for _, fn := range s.functions {
			want := wantInvoke[f] == fn
			arn := s.vals.Attributes[fn+".Arn"]
			if got, why := s.allowed(f, iamRequest{Action: "lambda:InvokeFunction", Resource: arn}); got != want {
				t.Errorf("%s: lambda:InvokeFunction on %s: allowed %v, want %v (by %v)", f, fn, got, want, why)
			}
			if got, _ := s.allowed(f, iamRequest{Action: "lambda:UpdateFunctionCode", Resource: arn}); got {
				t.Errorf("%s: lambda:UpdateFunctionCode on %s allowed", f, fn)
			}
		}
		for _, lg := range []string{"RouterLogGroup", "EnqueueLogGroup", "PollerLogGroup", "DequeueLogGroup"} {
			group := strings.TrimSuffix(s.vals.Attributes[lg+".Arn"], ":*")
			for _, action := range []string{"logs:CreateLogStream", "logs:PutLogEvents"} {
				want := wantLogGroup[f] == lg
				r := iamRequest{Action: action, Resource: group + ":log-stream:2026/03/01/[$LATEST]0123456789abcdef"}
				if got, why := s.allowed(f, r); got != want {
					t.Errorf("%s: %s in %s: allowed %v, want %v (by %v)", f, action, lg, got, want, why)
				}
			}
			for _, action := range []string{"logs:DeleteLogGroup", "logs:PutRetentionPolicy", "logs:CreateLogGroup"} {
				if got, why := s.allowed(f, iamRequest{Action: action, Resource: group + ":*"}); got {
					t.Errorf("%s: %s on %s allowed (by %v)", f, action, lg, why)
				}
			}
		}
		for _, r := range []iamRequest{
			{Action: "logs:CreateLogGroup", Resource: fmt.Sprintf("arn:aws:logs:%s:%s:log-group:/aws/lambda/x", testRegion, testAccount)},
			{Action: "iam:PassRole", Resource: fmt.Sprintf("arn:aws:iam::%s:role/anything", testAccount)},
			{Action: "sts:AssumeRole", Resource: fmt.Sprintf("arn:aws:iam::%s:role/anything", testAccount)},
			{Action: "sns:Publish", Resource: fmt.Sprintf("arn:aws:sns:%s:%s:topic", testRegion, testAccount)},
			{Action: "s3:ListAllMyBuckets", Resource: "*"},
		} {
			if got, why := s.allowed(f, r); got {
				t.Errorf("%s: %s allowed (by %v)", f, r, why)
			}
		}
	}
}

// checkTopic: every function publishes to the stack's topic and to no
// other; the schedules publish nothing; nobody manages the topic.
func checkTopic(t *testing.T, s *stack) {
	t.Helper()
	topic := s.vals.Resources["AlarmTopic"]
	if !strings.HasPrefix(topic, "arn:aws:sns:") {
		t.Fatalf("the stack's topic resolves to %q", topic)
	}
	for _, f := range append(append([]string{}, s.functions...), s.schedules...) {
		want := slices.Contains(s.functions, f)
		if got, why := s.allowed(f, iamRequest{Action: "sns:Publish", Resource: topic}); got != want {
			t.Errorf("%s: sns:Publish on the stack's topic: allowed %v, want %v (by %v)", f, got, want, why)
		}
		for _, action := range []string{"sns:Subscribe", "sns:SetTopicAttributes", "sns:DeleteTopic", "sns:CreateTopic"} {
			if got, why := s.allowed(f, iamRequest{Action: action, Resource: topic}); got {
				t.Errorf("%s: %s on the stack's topic allowed (by %v)", f, action, why)
			}
		}
	}
}

// kmsContext is the request context of a KMS call made on a principal's
// behalf by a service, for one resource of that service.
func kmsContext(service, key, value string) map[string]string {
	ctx := map[string]string{"kms:ViaService": service + "." + testRegion + ".amazonaws.com"}
	if key != "" {
		ctx["kms:EncryptionContext:"+key] = value
	}
	return ctx
}

func checkKMS(t *testing.T, s *stack, key string) {
	t.Helper()
	secret := fnoValues.Parameters["FnoSecretArn"]
	type use struct {
		name    string
		ctx     map[string]string
		actions map[string][]string // principal -> allowed KMS actions
	}
	both := []string{"kms:Decrypt", "kms:GenerateDataKey"}
	all := map[string][]string{"RouterFunction": both, "EnqueueFunction": both, "PollerFunction": both, "DequeueFunction": both}
	uses := []use{
		{"the bucket", kmsContext("s3", "aws:s3:arn", s.bucket), all},
		{"an object", kmsContext("s3", "aws:s3:arn", s.bucket+"/inbound/customers/a.csv"), all},
		{"another bucket", kmsContext("s3", "aws:s3:arn", "arn:aws:s3:::another-bucket"), nil},
		{"the arrivals queue", kmsContext("sqs", "aws:sqs:arn", s.vals.Attributes["ArrivalsQueue.Arn"]),
			map[string][]string{"RouterFunction": both}},
		{"the import queue", kmsContext("sqs", "aws:sqs:arn", s.vals.Attributes["ImportQueue.Arn"]),
			map[string][]string{"RouterFunction": both, "EnqueueFunction": both, "PollerFunction": both}},
		{"the import DLQ", kmsContext("sqs", "aws:sqs:arn", s.vals.Attributes["ImportDLQ.Arn"]),
			map[string][]string{"PollerFunction": {"kms:Decrypt"}}},
		{"the schedule DLQ", kmsContext("sqs", "aws:sqs:arn", s.vals.Attributes["ScheduleDLQ.Arn"]),
			map[string][]string{"PollerFunctionPoll": both, "ExportSchedules": both, "PollerFunction": both, "DequeueFunction": both}},
		{"the secret", kmsContext("secretsmanager", "SecretARN", secret),
			map[string][]string{"EnqueueFunction": {"kms:Decrypt"}, "PollerFunction": {"kms:Decrypt"}, "DequeueFunction": {"kms:Decrypt"}}},
		{"another secret", kmsContext("secretsmanager", "SecretARN", otherSecret), nil},
		{"directly", nil, nil},
		{"through S3 without a context", kmsContext("s3", "", ""), nil},
		{"through another service", kmsContext("dynamodb", "aws:s3:arn", s.bucket), nil},
	}
	kmsActions := []string{"kms:Decrypt", "kms:GenerateDataKey", "kms:Encrypt", "kms:ReEncryptFrom", "kms:ReEncryptTo",
		"kms:GenerateDataKeyWithoutPlaintext", "kms:CreateGrant", "kms:DescribeKey", "kms:ScheduleKeyDeletion", "kms:PutKeyPolicy"}
	for _, f := range append(append([]string{}, s.functions...), s.schedules...) {
		for _, u := range uses {
			for _, k := range []string{testKey, otherKey} {
				for _, action := range kmsActions {
					want := key != "" && k == key && slices.Contains(u.actions[f], action)
					r := iamRequest{Action: action, Resource: k, Context: u.ctx}
					if got, why := s.allowed(f, r); got != want {
						t.Errorf("%s: %s with %s key %s for %s: allowed %v, want %v (by %v)", f, action,
							map[bool]string{true: "the", false: "another"}[k == testKey], k, u.name, got, want, why)
					}
				}
			}
		}
	}
}

// checkExamples are the cases issue 14 names, and a few more a reviewer
// would try, spelt out.
func checkExamples(t *testing.T, s *stack, key string) {
	t.Helper()
	obj := func(k string) string { return s.bucket + "/" + k }
	q := func(id string) string { return s.vals.Attributes[id+".Arn"] }
	for _, tc := range []struct {
		who  string
		r    iamRequest
		want bool
	}{
		{"DequeueFunction", iamRequest{Action: "s3:PutObject", Resource: obj("inbound/x")}, false},
		{"DequeueFunction", iamRequest{Action: "s3:PutObject", Resource: obj("inbound/customers/export.csv")}, false},
		{"DequeueFunction", iamRequest{Action: "s3:PutObject", Resource: obj("outbound/x")}, true},
		{"DequeueFunction", iamRequest{Action: "s3:PutObject", Resource: obj("_state/exports/cg/x.json")}, true},
		{"DequeueFunction", iamRequest{Action: "s3:PutObject", Resource: obj("_state/markers/x.json")}, false},
		{"DequeueFunction", iamRequest{Action: "s3:PutObject", Resource: obj("failed/_exports/vendors/2026/03/01/x.result.json")}, true},
		{"DequeueFunction", iamRequest{Action: "s3:PutObject", Resource: obj("failed/customers/2026/03/01/a.csv")}, false},
		{"DequeueFunction", iamRequest{Action: "s3:PutObject", Resource: obj("_state/where/a.csv/x.json")}, false},
		{"PollerFunction", iamRequest{Action: "s3:GetObject", Resource: obj("_state/where/a.csv/x.json")}, false},
		{"DequeueFunction", iamRequest{Action: "s3:DeleteObject", Resource: obj("outbound/x")}, false},
		{"DequeueFunction", iamRequest{Action: "s3:GetObject", Resource: obj("inbound/customers/a.csv")}, false},
		{"RouterFunction", iamRequest{Action: "s3:DeleteObject", Resource: obj("processed/x")}, false},
		{"RouterFunction", iamRequest{Action: "s3:DeleteObjectVersion", Resource: obj("processed/x")}, false},
		{"RouterFunction", iamRequest{Action: "s3:DeleteObject", Resource: obj("inbound/customers/a.csv")}, false},
		{"RouterFunction", iamRequest{Action: "s3:DeleteObjectVersion", Resource: obj("inbound/customers/a.csv")}, true},
		{"RouterFunction", iamRequest{Action: "s3:PutObject", Resource: obj("rejected/customers/2026/03/01/a.csv")}, false},
		{"RouterFunction", iamRequest{Action: "s3:GetObject", Resource: obj("_state/markers/x.json")}, false},
		{"PollerFunction", iamRequest{Action: "s3:GetObject", Resource: obj("outbound/x")}, false},
		{"PollerFunction", iamRequest{Action: "s3:PutObject", Resource: obj("inbound/customers/a.csv")}, false},
		{"PollerFunction", iamRequest{Action: "s3:PutObject", Resource: obj("inbound/customers/a.csv.stuck.json")}, true},
		{"PollerFunction", iamRequest{Action: "s3:DeleteObject", Resource: obj("inbound/customers/a.csv")}, false},
		{"PollerFunction", iamRequest{Action: "s3:PutObject", Resource: obj("rejected/customers/2026/03/01/a.csv")}, false},
		{"EnqueueFunction", iamRequest{Action: "sqs:SendMessage", Resource: q("ArrivalsQueue")}, false},
		{"EnqueueFunction", iamRequest{Action: "sqs:ReceiveMessage", Resource: q("ArrivalsQueue")}, false},
		{"EnqueueFunction", iamRequest{Action: "sqs:ReceiveMessage", Resource: q("ImportDLQ")}, false},
		{"EnqueueFunction", iamRequest{Action: "s3:PutObject", Resource: obj("processed/customers/2026/03/01/a.csv")}, false},
		{"EnqueueFunction", iamRequest{Action: "s3:DeleteObject", Resource: obj("_state/ledger/1/x.json")}, false},
		{"RouterFunction", iamRequest{Action: "sqs:ReceiveMessage", Resource: q("ImportQueue")}, false},
		{"RouterFunction", iamRequest{Action: "secretsmanager:GetSecretValue", Resource: fnoValues.Parameters["FnoSecretArn"]}, false},
		{"PollerFunctionPoll", iamRequest{Action: "lambda:InvokeFunction", Resource: s.vals.Attributes["DequeueFunction.Arn"]}, false},
		{"ExportSchedules", iamRequest{Action: "lambda:InvokeFunction", Resource: s.vals.Attributes["DequeueFunction.Arn"]}, true},
		// GET or HEAD of a missing key: S3 answers 404 (not 403) only with
		// s3:ListBucket, asked without a prefix.
		{"RouterFunction", iamRequest{Action: "s3:ListBucket", Resource: s.bucket}, true},
		{"DequeueFunction", iamRequest{Action: "s3:ListBucket", Resource: s.bucket,
			Context: map[string]string{"s3:prefix": "inbound/"}}, false},
		{"EnqueueFunction", iamRequest{Action: "kms:Decrypt", Resource: testKey,
			Context: kmsContext("s3", "aws:s3:arn", s.bucket)}, key != ""},
	} {
		if got, why := s.allowed(tc.who, tc.r); got != tc.want {
			t.Errorf("%s: %s: allowed %v, want %v (by %v)", tc.who, tc.r, got, tc.want, why)
		}
	}
}

// TestPoliciesAssumeTheDefaultLayout: the policies name the layout's
// default prefixes, so no function may be configured with other ones.
func TestPoliciesAssumeTheDefaultLayout(t *testing.T) {
	tpl := loadTemplate(t)
	fns, err := tpl.Functions(fnoValues)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fns {
		for name := range f.Properties["Environment"].(map[string]any)["Variables"].(map[string]any) {
			if strings.HasSuffix(name, "_PREFIX") {
				t.Errorf("%s sets %s: the IAM policies name the default prefixes (inbound/, processed/, ...); change them together", f.LogicalID, name)
			}
		}
	}
	l := layout.Default()
	got := []string{l.Inbound, l.Processed, l.Failed, l.Rejected, l.State}
	if want := []string{"inbound/", "processed/", "failed/", "rejected/", "_state/"}; !slices.Equal(got, want) {
		t.Errorf("layout.Default() = %v; the policies in template.yaml name %v", got, want)
	}
}
