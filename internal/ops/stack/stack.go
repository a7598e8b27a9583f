// Package stack finds the parts of one deployment that the operator's tool
// (cmd/s3fno) works on: the bucket, the queues, the topic, the functions,
// the schedules and the import functions' settings. They come from a
// CloudFormation stack (its outputs, its resources and the poller
// function's environment), from an env file (the JSON file `make invoke`
// reads: the local runner and moto are no CloudFormation stacks), or from
// flags, each overriding the one before.
package stack

import (
	"context"
	"flag"
	"fmt"
	"slices"
	"strings"

	"github.com/fno-bridge/s3-fno/internal/shared/fnoenv"
	"github.com/fno-bridge/s3-fno/internal/shared/layout"
	"github.com/fno-bridge/s3-fno/pkg/d365"
)

// Stack is one deployment's parts.
type Stack struct {
	// Name is the CloudFormation stack; "" when the parts came from flags.
	Name string
	// Status is the stack's status (CREATE_COMPLETE, ...), with a stack.
	Status        string
	Bucket        string
	ImportQueue   string
	ImportDLQ     string
	ArrivalsQueue string
	ArrivalsDLQ   string
	ScheduleDLQ   string
	Topic         string
	// Functions maps router, enqueue, poller and dequeue to a function's
	// name or ARN.
	Functions map[string]string
	// Schedules are EventBridge Scheduler schedule names (default group).
	Schedules []string
	// ExportScheduleGroup, ExportScheduleRole and ScheduleDLQArn are what
	// the export jobs' schedules are made with.
	ExportScheduleGroup string
	ExportScheduleRole  string
	ScheduleDLQArn      string
	// Env is the import functions' environment: ROUTES or CONFIG_KEY,
	// FNO_*, the *_PREFIX variables.
	Env map[string]string
}

// Getenv reads Env, with BUCKET and the queue URLs as the functions see
// them.
func (s *Stack) Getenv(k string) string {
	switch k {
	case "BUCKET":
		return s.Bucket
	case "IMPORT_QUEUE_URL":
		return s.ImportQueue
	case "IMPORT_DLQ_URL":
		return s.ImportDLQ
	case "NOTIFY_TOPIC_ARN":
		return s.Topic
	}
	return s.Env[k]
}

// Layout is the bucket layout the functions use.
func (s *Stack) Layout() (layout.Layout, error) { return layout.FromEnv(s.Getenv) }

// NeedBucket says what to give when no bucket is known.
func (s *Stack) NeedBucket() error {
	if s.Bucket == "" {
		return fmt.Errorf("no bucket: give --stack NAME (a deployed stack), --env-file FILE or --bucket NAME")
	}
	return nil
}

// FnO is the F&O connection the import functions use; ok is false when
// the settings are not known (no stack, no FNO_* in the env file or flags).
func (s *Stack) FnO() (fnoenv.Settings, bool) {
	st := fnoenv.Settings{BaseURL: s.Env["FNO_BASE_URL"], TenantID: s.Env["FNO_TENANT_ID"], ClientID: s.Env["FNO_CLIENT_ID"],
		SecretARN: s.Env["FNO_SECRET_ARN"], ClientSecret: s.Env["FNO_CLIENT_SECRET"], AuthorityHost: s.Env["FNO_AUTHORITY_HOST"],
		CABundle: s.Env["FNO_CA_BUNDLE"], Namespace: s.Env["FNO_NAMESPACE"]}
	// An AD FS authority (on-premises) has no tenant.
	_, adfs, _ := d365.Authority(st.AuthorityHost, st.TenantID)
	return st, st.BaseURL != "" && (st.TenantID != "" || adfs) && st.ClientID != "" && (st.SecretARN != "" || st.ClientSecret != "")
}

// Flags are how the operator names a deployment.
type Flags struct {
	Stack, EnvFile                              string
	Region, Profile, EndpointURL                string
	Bucket, ImportQueue, ImportDLQ, Topic       string
	ArrivalsQueue, ArrivalsDLQ, ScheduleDLQ     string
	Routes, ConfigKey                           string
	FnoBaseURL, FnoTenantID, FnoClientID        string
	FnoSecretARN, FnoAuthorityHost, FnoCABundle string
	FnoNamespace                                string
	ScheduleGroup, ScheduleRole, ScheduleDLQArn string
	Schedules                                   list
	Functions                                   list
}

// Register adds the flags to fs.
func (f *Flags) Register(fs *flag.FlagSet) {
	for _, v := range []struct {
		p          *string
		name, help string
	}{
		{&f.Stack, "stack", "the CloudFormation stack to work on (its outputs name the rest)"},
		{&f.EnvFile, "env-file", "a JSON env `FILE` as make invoke reads ({\"Parameters\": {\"BUCKET\": ...}}): for moto and the local runner"},
		{&f.Region, "region", "AWS region (default: the AWS configuration's)"},
		{&f.Profile, "profile", "AWS shared configuration profile"},
		{&f.EndpointURL, "endpoint-url", "AWS endpoint for every service (moto_server); S3 is then addressed path-style"},
		{&f.Bucket, "bucket", "the data bucket"},
		{&f.ImportQueue, "import-queue", "the FIFO import queue's URL"},
		{&f.ImportDLQ, "import-dlq", "the import dead-letter queue's URL"},
		{&f.ArrivalsQueue, "arrivals-queue", "the arrivals queue's URL"},
		{&f.ArrivalsDLQ, "arrivals-dlq", "the arrivals dead-letter queue's URL"},
		{&f.ScheduleDLQ, "schedule-dlq", "the schedules' dead-letter queue's URL"},
		{&f.Topic, "topic", "the notification topic's ARN"},
		{&f.ScheduleGroup, "schedule-group", "the EventBridge Scheduler group of the export jobs' schedules"},
		{&f.ScheduleRole, "schedule-role", "the role ARN the export schedules invoke the dequeue function with"},
		{&f.ScheduleDLQArn, "schedule-dlq-arn", "the export schedules' dead-letter queue ARN"},
		{&f.Routes, "routes", "the ROUTES document (JSON), when the functions get routes that way"},
		{&f.ConfigKey, "config-key", "the configuration document's key (default " + layout.DefaultConfigKey + ")"},
		{&f.FnoBaseURL, "fno-base-url", "F&O environment URL"},
		{&f.FnoTenantID, "fno-tenant-id", "Entra ID tenant of the app registration"},
		{&f.FnoClientID, "fno-client-id", "the app registration's client ID"},
		{&f.FnoSecretARN, "fno-secret-arn", "the Secrets Manager secret holding the client secret or certificate"},
		{&f.FnoAuthorityHost, "fno-authority-host", "Entra ID host (default https://login.microsoftonline.com), or an on-premises AD FS authority (https://adfs.contoso.com/adfs)"},
		{&f.FnoNamespace, "fno-namespace", "the OData namespace of an on-premises environment (AXSF)"},
		{&f.FnoCABundle, "fno-ca-bundle", "a PEM file of CAs to trust for F&O (the local emulator)"},
	} {
		fs.StringVar(v.p, v.name, "", v.help)
	}
	fs.Var(&f.Schedules, "schedule", "an EventBridge Scheduler schedule to check (repeatable)")
	fs.Var(&f.Functions, "function", "a Lambda function to check, as role=name, e.g. poller=my-poller (repeatable)")
}

// list is a repeatable string flag.
type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(v string) error { *l = append(*l, v); return nil }

// Open finds the deployment's parts (the stack's, then the env file's,
// then the flags') and the AWS clients to reach them.
func Open(ctx context.Context, f Flags) (*Stack, *Clients, error) {
	var env map[string]string
	if f.EnvFile != "" {
		var err error
		if env, err = ReadEnvFile(f.EnvFile); err != nil {
			return nil, nil, err
		}
	}
	c, err := NewClients(ctx, f, env)
	if err != nil {
		return nil, nil, err
	}
	s := &Stack{Functions: map[string]string{}, Env: map[string]string{}}
	if f.Stack != "" {
		if err := fromCloudFormation(ctx, c, f.Stack, s); err != nil {
			return nil, nil, err
		}
	}
	s.apply(env)
	if err := s.applyFlags(f); err != nil {
		return nil, nil, err
	}
	return s, c, nil
}

// apply takes the parts an env file names (<ROLE>_FUNCTION, such as
// DEQUEUE_FUNCTION, names a function); the rest is the functions'
// environment.
func (s *Stack) apply(env map[string]string) {
	for k, v := range env {
		if p := s.field(k); p != nil {
			*p = v
			continue
		}
		if role, ok := strings.CutSuffix(k, "_FUNCTION"); ok && slices.Contains(Roles, strings.ToLower(role)) {
			s.Functions[strings.ToLower(role)] = v
			continue
		}
		s.Env[k] = v
	}
}

// field is the Stack field an environment variable sets, or nil.
func (s *Stack) field(k string) *string {
	switch k {
	case "BUCKET":
		return &s.Bucket
	case "IMPORT_QUEUE_URL":
		return &s.ImportQueue
	case "IMPORT_DLQ_URL":
		return &s.ImportDLQ
	case "ARRIVALS_QUEUE_URL":
		return &s.ArrivalsQueue
	case "ARRIVALS_DLQ_URL":
		return &s.ArrivalsDLQ
	case "SCHEDULE_DLQ_URL":
		return &s.ScheduleDLQ
	case "NOTIFY_TOPIC_ARN":
		return &s.Topic
	case "EXPORT_SCHEDULE_GROUP":
		return &s.ExportScheduleGroup
	case "EXPORT_SCHEDULE_ROLE_ARN":
		return &s.ExportScheduleRole
	case "SCHEDULE_DLQ_ARN":
		return &s.ScheduleDLQArn
	}
	return nil
}

// applyFlags takes what the flags give.
func (s *Stack) applyFlags(f Flags) error {
	for _, v := range []struct {
		p   *string
		val string
	}{
		{&s.Bucket, f.Bucket}, {&s.ImportQueue, f.ImportQueue}, {&s.ImportDLQ, f.ImportDLQ}, {&s.ArrivalsQueue, f.ArrivalsQueue},
		{&s.ArrivalsDLQ, f.ArrivalsDLQ}, {&s.ScheduleDLQ, f.ScheduleDLQ}, {&s.Topic, f.Topic},
		{&s.ExportScheduleGroup, f.ScheduleGroup}, {&s.ExportScheduleRole, f.ScheduleRole}, {&s.ScheduleDLQArn, f.ScheduleDLQArn},
	} {
		if v.val != "" {
			*v.p = v.val
		}
	}
	for k, v := range map[string]string{"ROUTES": f.Routes, "CONFIG_KEY": f.ConfigKey, "FNO_BASE_URL": f.FnoBaseURL,
		"FNO_TENANT_ID": f.FnoTenantID, "FNO_CLIENT_ID": f.FnoClientID, "FNO_SECRET_ARN": f.FnoSecretARN,
		"FNO_AUTHORITY_HOST": f.FnoAuthorityHost, "FNO_CA_BUNDLE": f.FnoCABundle, "FNO_NAMESPACE": f.FnoNamespace} {
		if v != "" {
			s.Env[k] = v
		}
	}
	s.Schedules = append(s.Schedules, f.Schedules...)
	for _, fn := range f.Functions {
		role, name, ok := strings.Cut(fn, "=")
		if !ok || name == "" || !slices.Contains(Roles, role) {
			return fmt.Errorf("--function %q: give role=name, role one of %s", fn, strings.Join(Roles, ", "))
		}
		s.Functions[role] = name
	}
	return nil
}

// Roles are the functions of a deployment, by their part.
var Roles = []string{"router", "enqueue", "poller", "dequeue"}
