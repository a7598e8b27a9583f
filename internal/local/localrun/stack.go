package localrun

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/scheduler"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/fno-bridge/s3-fno/internal/local/lambdahost"
)

// Stack is the template's stateful resources, made on the local stand-ins.
type Stack struct {
	// Name is the stack's name (StackSpec.Name): STACK_NAME, the prefix of
	// every notification's subject.
	Name                     string
	Bucket                   string
	ArrivalsURL, ArrivalsARN string
	ArrivalsDLQURL           string
	ImportURL, ImportARN     string
	ImportDLQURL             string
	SecretARN                string
	InboundPrefix            string
	// NotifyTopicARN is the notification topic (NOTIFY_TOPIC_ARN);
	// NotifyQueueURL a standard queue subscribed to it, where what the
	// functions would have told people can be read (SNS's JSON envelope,
	// with Subject and Message).
	NotifyTopicARN string
	NotifyQueueURL string
	// ScheduleGroup is the export jobs' EventBridge Scheduler group
	// (<name>-exports); ScheduleRoleARN the role their schedules name (no
	// IAM here: moto takes it as given); ScheduleDLQURL and ScheduleDLQARN
	// the schedules' dead-letter queue.
	ScheduleGroup                  string
	ScheduleRoleARN                string
	ScheduleDLQURL, ScheduleDLQARN string
	// VisibilityTimeout is the queues' visibility timeout (what MotoFIFO
	// needs to know).
	VisibilityTimeout time.Duration
}

// StackSpec names the resources and sets the few knobs the local run needs.
type StackSpec struct {
	Name              string // prefix of every resource name
	ClientSecret      string // stored in Secrets Manager, as on AWS
	VisibilityTimeout int    // seconds; short locally so failed messages come back fast
	MaxReceiveCount   int
}

// Provision creates, like template.yaml does: a versioned bucket whose
// ObjectCreated notifications under inbound/ go to a standard arrivals
// queue (with a dead-letter queue), the FIFO import queue with its FIFO
// dead-letter queue, the client secret in Secrets Manager, the
// notification topic with a queue subscribed to it (where an e-mail address
// would be on AWS), and the export schedules' group and dead-letter queue.
func Provision(ctx context.Context, cfg aws.Config, spec StackSpec) (*Stack, error) {
	if spec.VisibilityTimeout <= 0 {
		spec.VisibilityTimeout = 5
	}
	if spec.MaxReceiveCount <= 0 {
		spec.MaxReceiveCount = 3
	}
	s3c := newS3Client(cfg)
	sqsc := sqs.NewFromConfig(cfg)
	st := &Stack{Name: spec.Name, Bucket: spec.Name + "-data", InboundPrefix: "inbound/", VisibilityTimeout: time.Duration(spec.VisibilityTimeout) * time.Second}

	mk := func(name string, attrs map[string]string) (string, string, error) {
		out, err := sqsc.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: &name, Attributes: attrs})
		if err != nil {
			return "", "", fmt.Errorf("create queue %s: %w", name, err)
		}
		a, err := sqsc.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: out.QueueUrl,
			AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn}})
		if err != nil {
			return "", "", fmt.Errorf("queue %s attributes: %w", name, err)
		}
		return *out.QueueUrl, a.Attributes["QueueArn"], nil
	}
	redrive := func(dlqARN string) string {
		return fmt.Sprintf(`{"deadLetterTargetArn":%q,"maxReceiveCount":"%d"}`, dlqARN, spec.MaxReceiveCount)
	}
	vis := fmt.Sprint(spec.VisibilityTimeout)
	var err error
	var arrivalsDLQARN, importDLQARN string
	if st.ArrivalsDLQURL, arrivalsDLQARN, err = mk(spec.Name+"-arrivals-dlq", nil); err != nil {
		return nil, err
	}
	if st.ArrivalsURL, st.ArrivalsARN, err = mk(spec.Name+"-arrivals", map[string]string{
		"VisibilityTimeout": vis, "RedrivePolicy": redrive(arrivalsDLQARN)}); err != nil {
		return nil, err
	}
	if st.ImportDLQURL, importDLQARN, err = mk(spec.Name+"-imports-dlq.fifo", map[string]string{"FifoQueue": "true"}); err != nil {
		return nil, err
	}
	if st.ImportURL, st.ImportARN, err = mk(spec.Name+"-imports.fifo", map[string]string{
		"FifoQueue": "true", "VisibilityTimeout": vis, "RedrivePolicy": redrive(importDLQARN)}); err != nil {
		return nil, err
	}

	if _, err := s3c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &st.Bucket}); err != nil {
		return nil, fmt.Errorf("create bucket %s: %w", st.Bucket, err)
	}
	if _, err := s3c.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: &st.Bucket,
		VersioningConfiguration: &s3types.VersioningConfiguration{Status: s3types.BucketVersioningStatusEnabled}}); err != nil {
		return nil, fmt.Errorf("bucket versioning: %w", err)
	}
	if _, err := s3c.PutBucketNotificationConfiguration(ctx, &s3.PutBucketNotificationConfigurationInput{
		Bucket: &st.Bucket,
		NotificationConfiguration: &s3types.NotificationConfiguration{QueueConfigurations: []s3types.QueueConfiguration{{
			QueueArn: &st.ArrivalsARN,
			Events:   []s3types.Event{"s3:ObjectCreated:*"},
			Filter: &s3types.NotificationConfigurationFilter{Key: &s3types.S3KeyFilter{FilterRules: []s3types.FilterRule{
				{Name: s3types.FilterRuleNamePrefix, Value: aws.String(st.InboundPrefix)},
			}}},
		}}},
	}); err != nil {
		return nil, fmt.Errorf("bucket notification: %w", err)
	}

	sm := secretsmanager.NewFromConfig(cfg)
	sec, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{
		Name: aws.String(spec.Name + "/fno-client"), SecretString: aws.String(fmt.Sprintf(`{"clientSecret":%q}`, spec.ClientSecret)),
	})
	if err != nil {
		return nil, fmt.Errorf("create secret: %w", err)
	}
	st.SecretARN = aws.ToString(sec.ARN)

	var notifyQueueARN string
	if st.NotifyQueueURL, notifyQueueARN, err = mk(spec.Name+"-notifications-inbox", nil); err != nil {
		return nil, err
	}
	snsc := sns.NewFromConfig(cfg)
	topic, err := snsc.CreateTopic(ctx, &sns.CreateTopicInput{Name: aws.String(spec.Name + "-notifications")})
	if err != nil {
		return nil, fmt.Errorf("create topic: %w", err)
	}
	st.NotifyTopicARN = aws.ToString(topic.TopicArn)
	if _, err := snsc.Subscribe(ctx, &sns.SubscribeInput{TopicArn: topic.TopicArn, Protocol: aws.String("sqs"),
		Endpoint: aws.String(notifyQueueARN)}); err != nil {
		return nil, fmt.Errorf("subscribe the notifications queue: %w", err)
	}
	if st.ScheduleDLQURL, st.ScheduleDLQARN, err = mk(spec.Name+"-schedules-dlq", nil); err != nil {
		return nil, err
	}
	return st, provisionSchedules(ctx, cfg, st)
}

// provisionSchedules creates the export schedules' group, as the template's
// ExportSchedules does, and names the role their schedules pass.
func provisionSchedules(ctx context.Context, cfg aws.Config, st *Stack) error {
	st.ScheduleGroup = st.Name + "-exports"
	st.ScheduleRoleARN = "arn:aws:iam::" + lambdahost.AccountID + ":role/" + st.Name + "-ExportScheduleRole"
	if _, err := scheduler.NewFromConfig(cfg).CreateScheduleGroup(ctx, &scheduler.CreateScheduleGroupInput{Name: &st.ScheduleGroup}); err != nil {
		return fmt.Errorf("create the schedule group %s: %w", st.ScheduleGroup, err)
	}
	return nil
}
