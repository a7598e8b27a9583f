package notify_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/fno-bridge/s3-fno/internal/local/mototest"
	"github.com/fno-bridge/s3-fno/internal/local/pipelinetest"
	"github.com/fno-bridge/s3-fno/internal/shared/layout"
	"github.com/fno-bridge/s3-fno/internal/shared/metrics"
	"github.com/fno-bridge/s3-fno/internal/shared/notify"
)

func TestMain(m *testing.M) { pipelinetest.Main(m) }

// TestSubject: subjects sort and filter well and are what SNS takes:
// "[stack] kind: what", printable ASCII, at most 100 characters, keeping
// the end of a long file name.
func TestSubject(t *testing.T) {
	for _, tt := range []struct{ what, want string }{
		{"customers/file.csv: ProcessedWithErrors, 2 rows", "[prod] failed: customers/file.csv: ProcessedWithErrors, 2 rows"},
		{"kunden/Müller\nneu.csv: x", "[prod] failed: kunden/M?ller neu.csv: x"},
		{strings.Repeat("a", 120) + "/end.csv: ProcessedWithErrors", ""},
	} {
		got := notify.Subject("prod", notify.Event{Kind: notify.Failed, What: tt.what})
		if len(got) > 100 || strings.ContainsFunc(got, func(r rune) bool { return r < 0x20 || r > 0x7e }) || !strings.HasPrefix(got, "[prod] failed: ") {
			t.Errorf("Subject(%q) = %q", tt.what, got)
		}
		if tt.want != "" && got != tt.want {
			t.Errorf("Subject(%q) = %q, want %q", tt.what, got, tt.want)
		}
		if tt.want == "" && !strings.HasSuffix(got, "/end.csv: ProcessedWithErrors") {
			t.Errorf("a long subject lost its end: %q", got)
		}
	}
}

// TestSentOnceAndOutagesOnlyCounted: on moto's SNS (delivering to a
// subscribed SQS queue), an event is one message however often it is
// sent; a topic that cannot be reached costs a logged, counted miss and no
// error for the caller.
func TestSentOnceAndOutagesOnlyCounted(t *testing.T) {
	ctx := context.Background()
	cfg := mototest.Config(t)
	snsc, sqsc := sns.NewFromConfig(cfg), sqs.NewFromConfig(cfg)
	topic, err := snsc.CreateTopic(ctx, &sns.CreateTopicInput{Name: aws.String(mototest.Name("alerts"))})
	if err != nil {
		t.Fatal(err)
	}
	queue, arn := pipelinetest.NewStandard(t, sqsc, 30)
	if _, err := snsc.Subscribe(ctx, &sns.SubscribeInput{TopicArn: topic.TopicArn, Protocol: aws.String("sqs"), Endpoint: aws.String(arn)}); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	rec := metrics.New("prod", &out)
	n := &notify.Notifier{Topic: aws.ToString(topic.TopicArn), Stack: "prod", Function: "poller", SNS: snsc, S3: mototest.S3(t),
		Bucket: mototest.NewBucket(t), Layout: layout.Default(), Log: pipelinetest.Quiet(), Metrics: rec}
	ev := notify.Event{Kind: notify.Failed, ID: "inbound/customers/a.csv v1 m1", What: "customers/a.csv: ProcessedWithErrors, 2 rows",
		Body: "An import did not succeed.", Fields: [][2]string{{"Route", "customers"}, {"Message ID", "m1"}, {"Empty", ""}}}
	for range 3 {
		n.Send(ctx, ev)
	}
	msgs := pipelinetest.Receive(t, sqsc, queue)
	if len(msgs) != 1 {
		t.Fatalf("%d messages on the topic, want 1", len(msgs))
	}
	var env struct{ Subject, Message string }
	if err := json.Unmarshal([]byte(aws.ToString(msgs[0].Body)), &env); err != nil {
		t.Fatal(err)
	}
	if env.Subject != "[prod] failed: customers/a.csv: ProcessedWithErrors, 2 rows" || !strings.Contains(env.Message, "Message ID: m1") ||
		strings.Contains(env.Message, "Empty") {
		t.Fatalf("message %+v", env)
	}
	// An outage: a topic SNS does not know.
	n.Topic += "-gone"
	n.Send(ctx, notify.Event{Kind: notify.Rejected, ID: "x", What: "customers/x.csv: empty-file"})
	rec.Flush()
	if !strings.Contains(out.String(), `"NotificationsFailed":1`) || !strings.Contains(out.String(), `"NotificationsSent":1`) {
		t.Fatalf("metrics %s", out.String())
	}
	var nilNotifier *notify.Notifier
	nilNotifier.Send(ctx, ev) // no topic configured anywhere: nothing happens
}
