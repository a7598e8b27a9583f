package doctor

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/scheduler"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"

	"github.com/fno-bridge/s3-fno/internal/shared/fnoenv"
)

// AWS is the part of each AWS service the checks call.
type AWS struct {
	S3 interface {
		HeadBucket(context.Context, *s3.HeadBucketInput, ...func(*s3.Options)) (*s3.HeadBucketOutput, error)
		GetBucketVersioning(context.Context, *s3.GetBucketVersioningInput, ...func(*s3.Options)) (*s3.GetBucketVersioningOutput, error)
	}
	SQS interface {
		GetQueueAttributes(context.Context, *sqs.GetQueueAttributesInput, ...func(*sqs.Options)) (*sqs.GetQueueAttributesOutput, error)
	}
	SNS interface {
		ListSubscriptionsByTopic(context.Context, *sns.ListSubscriptionsByTopicInput, ...func(*sns.Options)) (*sns.ListSubscriptionsByTopicOutput, error)
	}
	Secrets fnoenv.SecretGetter
	Lambda  interface {
		GetFunction(context.Context, *lambda.GetFunctionInput, ...func(*lambda.Options)) (*lambda.GetFunctionOutput, error)
	}
	Scheduler interface {
		GetSchedule(context.Context, *scheduler.GetScheduleInput, ...func(*scheduler.Options)) (*scheduler.GetScheduleOutput, error)
	}
}

// resources checks the stack, the bucket, the queues, the topic and the
// functions; it returns the queues' depths (messages in each, by URL).
func (d *Doctor) resources(ctx context.Context, r *Report) map[string]int {
	s := d.Stack
	if s.Name != "" {
		c := Check{Name: "stack " + s.Name, Result: OK, Detail: s.Status}
		if !strings.HasSuffix(s.Status, "_COMPLETE") || strings.Contains(s.Status, "ROLLBACK") || strings.HasPrefix(s.Status, "DELETE") {
			c.Result, c.Fix = Fail, "the stack is not deployed as it should be: read its events in the CloudFormation console, fix, deploy again"
		}
		r.add(c)
	}
	r.add(d.within(ctx, d.bucket))
	depth := map[string]int{}
	for _, q := range []struct{ name, url string }{{"import queue", s.ImportQueue}, {"import dead-letter queue", s.ImportDLQ},
		{"arrivals queue", s.ArrivalsQueue}, {"arrivals dead-letter queue", s.ArrivalsDLQ}, {"schedule dead-letter queue", s.ScheduleDLQ}} {
		if q.url == "" {
			continue
		}
		r.add(d.within(ctx, func(ctx context.Context) Check { return d.queue(ctx, q.name, q.url, depth) }))
	}
	if s.Topic != "" {
		r.add(d.within(ctx, d.topic))
	}
	for _, role := range []string{"router", "enqueue", "poller", "dequeue"} {
		if fn := s.Functions[role]; fn != "" {
			r.add(d.within(ctx, func(ctx context.Context) Check { return d.function(ctx, role, fn) }))
		}
	}
	return depth
}

func (d *Doctor) bucket(ctx context.Context) Check {
	b := d.Stack.Bucket
	c := Check{Name: "bucket " + b, Result: OK}
	if b == "" {
		return Check{Name: "bucket", Result: Fail, Detail: "no bucket known", Fix: "give --stack NAME, --env-file FILE or --bucket NAME"}
	}
	if _, err := d.AWS.S3.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &b}); err != nil {
		c.Result, c.Detail = Fail, why(err)
		c.Fix = "check the bucket's name and region (--region), and that your credentials may s3:ListBucket on it"
		if status(err) == http.StatusNotFound {
			c.Fix = "no bucket has this name in this account and region: check --stack or --bucket and --region"
		}
		return c
	}
	v, err := d.AWS.S3.GetBucketVersioning(ctx, &s3.GetBucketVersioningInput{Bucket: &b})
	switch {
	case err != nil:
		c.Result, c.Detail, c.Fix = Warn, "versioning unknown: "+why(err), "let your credentials s3:GetBucketVersioning to check it"
	case v.Status != s3types.BucketVersioningStatusEnabled:
		c.Result, c.Detail = Fail, "versioning is not enabled"
		c.Fix = "enable versioning on the bucket (the stack does): files are moved by exact version and told apart by it"
	default:
		c.Detail = "exists, versioned"
	}
	return c
}

func (d *Doctor) queue(ctx context.Context, name, url string, depth map[string]int) Check {
	c := Check{Name: name, Result: OK}
	out, err := d.AWS.SQS.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: &url, AttributeNames: []sqstypes.QueueAttributeName{
		sqstypes.QueueAttributeNameApproximateNumberOfMessages, sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible}})
	if err != nil {
		c.Result, c.Detail = Fail, why(err)
		c.Fix = "check the queue URL (" + url + ") and that your credentials may sqs:GetQueueAttributes on it"
		return c
	}
	n := 0
	for _, v := range out.Attributes {
		k, _ := strconv.Atoi(v)
		n += k
	}
	depth[url] = n
	c.Detail = fmt.Sprintf("exists, %d message%s", n, map[bool]string{true: "", false: "s"}[n == 1])
	return c
}

func (d *Doctor) topic(ctx context.Context) Check {
	arn := d.Stack.Topic
	c := Check{Name: "notification topic", Result: OK}
	out, err := d.AWS.SNS.ListSubscriptionsByTopic(ctx, &sns.ListSubscriptionsByTopicInput{TopicArn: &arn})
	if err != nil {
		c.Result, c.Detail, c.Fix = Fail, why(err), "check the topic "+arn+" exists and your credentials may sns:ListSubscriptionsByTopic"
		return c
	}
	confirmed := 0
	for _, sub := range out.Subscriptions {
		if a := aws.ToString(sub.SubscriptionArn); a != "" && a != "PendingConfirmation" {
			confirmed++
		}
	}
	if confirmed == 0 {
		c.Result, c.Detail = Warn, "no confirmed subscription: failures are told to no one"
		c.Fix = "subscribe an address (the AlarmEmail parameter) and confirm the e-mail AWS sends"
		return c
	}
	c.Detail = fmt.Sprintf("exists, %d confirmed subscription%s", confirmed, map[bool]string{true: "", false: "s"}[confirmed == 1])
	return c
}

func (d *Doctor) function(ctx context.Context, role, fn string) Check {
	c := Check{Name: role + " function", Result: OK}
	out, err := d.AWS.Lambda.GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: &fn})
	if err != nil {
		c.Result, c.Detail, c.Fix = Fail, why(err), "check the function "+fn+" exists and your credentials may lambda:GetFunction"
		return c
	}
	cfg := out.Configuration
	if cfg != nil && (cfg.State == "Failed" || cfg.LastUpdateStatus == "Failed") {
		c.Result, c.Detail = Fail, fmt.Sprintf("state %s, last update %s: %s", cfg.State, cfg.LastUpdateStatus, aws.ToString(cfg.StateReason))
		c.Fix = "deploy the stack again; the function's state reason says what Lambda could not do"
		return c
	}
	if cfg != nil {
		c.Detail = "exists, state " + string(cfg.State)
	}
	return c
}

// why is an AWS error for people: its code and message.
func why(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		if m := ae.ErrorMessage(); m != "" {
			return ae.ErrorCode() + ": " + m
		}
		return ae.ErrorCode()
	}
	return err.Error()
}

// status is an AWS error's HTTP status, 0 when none came back.
func status(err error) int {
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}
