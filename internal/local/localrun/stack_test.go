package localrun_test

import (
	"context"
	"encoding/json"
	"net/url"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/fno-bridge/s3-fno/internal/local/localrun"
	"github.com/fno-bridge/s3-fno/internal/local/mototest"
)

// The provisioned stack delivers an upload under inbound/ to the arrivals
// queue as an S3 notification, and nothing for other prefixes.
func TestProvisionWiresNotifications(t *testing.T) {
	ctx := context.Background()
	cfg := mototest.Config(t)
	st, err := localrun.Provision(ctx, cfg, localrun.StackSpec{Name: mototest.Name("st"), ClientSecret: "s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	s3c := mototest.S3(t)
	for _, k := range []string{"inbound/customers/a b.csv", "outbound/x.csv"} {
		if _, err := s3c.PutObject(ctx, &s3.PutObjectInput{Bucket: &st.Bucket, Key: aws.String(k), Body: strings.NewReader("x")}); err != nil {
			t.Fatal(err)
		}
	}
	sqsc := mototest.SQS(t)
	var keys []string
	for range 3 {
		out, err := sqsc.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &st.ArrivalsURL, MaxNumberOfMessages: 10})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range out.Messages {
			// moto's eventTime has no zone, which events.S3Event rejects:
			// read only the key here.
			var ev struct {
				Records []struct {
					S3 struct{ Object struct{ Key string } }
				}
			}
			if err := json.Unmarshal([]byte(*m.Body), &ev); err != nil {
				t.Fatal(err)
			}
			for _, r := range ev.Records {
				k, err := url.QueryUnescape(r.S3.Object.Key)
				if err != nil {
					t.Fatal(err)
				}
				keys = append(keys, k)
			}
		}
	}
	if len(keys) != 1 || keys[0] != "inbound/customers/a b.csv" {
		t.Fatalf("notified keys %q, want only the inbound one", keys)
	}
	sec, err := secretsmanager.NewFromConfig(cfg).GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: &st.SecretARN})
	if err != nil || !strings.Contains(aws.ToString(sec.SecretString), "s3cret") {
		t.Fatalf("secret: %v %v", err, sec)
	}
}

// The provisioned stack has a notification topic whose messages reach the
// subscribed queue in SNS's envelope, where ReadNotifications finds the
// subject, the kind and the fields, once.
func TestProvisionNotificationTopic(t *testing.T) {
	ctx := context.Background()
	cfg := mototest.Config(t)
	name := mototest.Name("nt")
	st, err := localrun.Provision(ctx, cfg, localrun.StackSpec{Name: name, ClientSecret: "s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	if st.Name != name || !strings.HasSuffix(st.NotifyTopicARN, ":"+name+"-notifications") || st.NotifyQueueURL == "" || st.ImportDLQURL == "" {
		t.Fatalf("stack %+v", st)
	}
	if _, err := sns.NewFromConfig(cfg).Publish(ctx, &sns.PublishInput{TopicArn: &st.NotifyTopicARN,
		Subject: aws.String("[" + name + "] rejected: customers/empty.csv: empty-file"),
		Message: aws.String("A file was not sent to F&O and will not be: it is empty.\n\nDropped as: inbound/customers/empty.csv\nReason: empty-file\n"),
	}); err != nil {
		t.Fatal(err)
	}
	got, err := localrun.ReadNotifications(ctx, mototest.SQS(t), st.NotifyQueueURL)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Kind != "rejected" || got[0].Field("Dropped as") != "inbound/customers/empty.csv" || got[0].Field("Reason") != "empty-file" {
		t.Fatalf("notifications %+v", got)
	}
	if again, err := localrun.ReadNotifications(ctx, mototest.SQS(t), st.NotifyQueueURL); err != nil || len(again) != 0 {
		t.Fatalf("read twice: %+v %v", again, err)
	}
}
