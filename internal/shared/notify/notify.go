// Package notify tells a person about what needs one: a file filed under
// failed/ or rejected/, an import reported stuck, an export that failed, a
// message in the import dead-letter queue, credentials F&O's sign-in
// refuses. One SNS message per event, sent once: a marker written with
// If-None-Match before the publish keeps a redelivery, a repeated step or a
// second function from sending it again. It is a side path: when SNS
// fails, the miss is logged and counted and the pipeline goes on.
package notify

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sns"

	"github.com/fno-bridge/s3-fno/internal/shared/layout"
	"github.com/fno-bridge/s3-fno/internal/shared/metrics"
	"github.com/fno-bridge/s3-fno/internal/shared/s3io"
)

// Kind is what happened.
type Kind string

// The events a person hears of.
const (
	Failed       Kind = "failed"        // a file filed under failed/
	Rejected     Kind = "rejected"      // a file filed under rejected/
	Stuck        Kind = "stuck"         // an import reported stuck
	ExportFailed Kind = "export-failed" // an export not landed or not acknowledged
	DeadLetter   Kind = "dead-letter"   // an import message in the dead-letter queue
	Credentials  Kind = "credentials"   // Entra ID refused the app's credentials
	Config       Kind = "config"        // the configuration document cannot be used
)

// Event is one thing to tell.
type Event struct {
	Kind Kind
	// ID names the event once: the same ID is never sent twice (a file's
	// identity, an export's correlation ID, an SQS message ID, ...).
	ID string
	// What is the subject's detail after "[stack] kind: ", e.g.
	// "customers/file.csv: ProcessedWithErrors, 2 rows".
	What string
	// Body is the message for people; Fields are appended as "name: value"
	// lines, in order.
	Body   string
	Fields [][2]string
}

// Publisher is the part of SNS a Notifier needs.
type Publisher interface {
	Publish(context.Context, *sns.PublishInput, ...func(*sns.Options)) (*sns.PublishOutput, error)
}

var _ Publisher = (*sns.Client)(nil)

// S3 is what the once-only markers need.
type S3 interface {
	s3io.Putter
}

// Notifier sends events to one SNS topic. A nil Notifier, or one without a
// topic, only logs what it would have sent.
type Notifier struct {
	Topic    string // NOTIFY_TOPIC_ARN
	Stack    string // STACK_NAME: the subject's prefix
	Function string // the function sending, for the metrics
	SNS      Publisher
	S3       S3
	Bucket   string
	Layout   layout.Layout
	Log      *slog.Logger
	Metrics  *metrics.Recorder
}

// Send tells a person about ev, once. It never fails: a miss is logged at
// ERROR and counted (NotificationsFailed). settled is false only when the
// once-only marker could not be written, so that sending ev again later
// may still tell of it; a caller that remembers what it has told can
// forget ev then.
func (n *Notifier) Send(ctx context.Context, ev Event) (settled bool) {
	first, settled := n.Claim(ctx, ev)
	if first {
		n.Publish(ctx, ev)
	}
	return settled
}

// Claim writes ev's once-only marker, for a caller that acts on a first
// telling before it sends it (Publish): first is true only for the one
// Claim that wrote the marker, or when no topic is configured (nothing to
// keep once). settled is as Send's; a marker that could not be written is
// a miss, logged and counted, and first is false.
func (n *Notifier) Claim(ctx context.Context, ev Event) (first, settled bool) {
	if n == nil {
		return true, true
	}
	log := n.logger()
	subject := Subject(n.Stack, ev)
	if n.Topic == "" || n.SNS == nil {
		log.InfoContext(ctx, "notify: no topic configured; not sent", "kind", ev.Kind, "subject", subject)
		return true, true
	}
	marker := n.Layout.NotifiedKey(markerName(ev))
	created, err := s3io.PutJSONIfAbsent(ctx, n.S3, n.Bucket, marker, map[string]any{
		"kind": ev.Kind, "id": ev.ID, "subject": subject, "at": time.Now().UTC()})
	switch {
	case err != nil:
		n.miss(ctx, log, ev, subject, fmt.Errorf("once-only marker: %w", err))
		return false, false
	case !created:
		log.DebugContext(ctx, "notify: sent before; not again", "kind", ev.Kind, "subject", subject)
		return false, true
	}
	return true, true
}

// Publish sends ev, claimed with Claim, to the topic.
func (n *Notifier) Publish(ctx context.Context, ev Event) {
	if n == nil || n.Topic == "" || n.SNS == nil {
		return
	}
	log := n.logger()
	subject := Subject(n.Stack, ev)
	_, err := n.SNS.Publish(ctx, &sns.PublishInput{TopicArn: &n.Topic, Subject: aws.String(subject), Message: aws.String(Message(ev))})
	if err != nil {
		// The marker stands: no later Send tells of ev either.
		n.miss(ctx, log, ev, subject, err)
		return
	}
	n.Metrics.Add("NotificationsSent", 1, metrics.Function, n.Function)
	log.InfoContext(ctx, "notify: sent", "kind", ev.Kind, "subject", subject)
}

func (n *Notifier) logger() *slog.Logger {
	if n.Log == nil {
		return slog.Default()
	}
	return n.Log
}

func (n *Notifier) miss(ctx context.Context, log *slog.Logger, ev Event, subject string, err error) {
	n.Metrics.Add("NotificationsFailed", 1, metrics.Function, n.Function)
	log.ErrorContext(ctx, "notify: not sent; the pipeline goes on", "kind", ev.Kind, "subject", subject, "error", err.Error())
}

// markerName is the once-only marker's name of an event.
func markerName(ev Event) string {
	sum := sha256.Sum256([]byte(string(ev.Kind) + "\x00" + ev.ID))
	return hex.EncodeToString(sum[:])
}

// maxSubject is SNS's limit on a subject.
const maxSubject = 100

// Subject is "[stack] kind: what", made what SNS takes: printable ASCII
// (others become '?', line breaks spaces), at most 100 characters, the end
// of what kept (it names the file and the outcome).
func Subject(stack string, ev Event) string {
	head := ascii("[" + stack + "] " + string(ev.Kind) + ": ")
	what := ascii(ev.What)
	if len(head)+len(what) <= maxSubject {
		return head + what
	}
	if len(head)+3 >= maxSubject {
		return (head + what)[:maxSubject]
	}
	return head + "..." + what[len(what)-(maxSubject-len(head)-3):]
}

func ascii(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\n' || r == '\r' || r == '\t':
			return ' '
		case r < 0x20 || r > 0x7e:
			return '?'
		}
		return r
	}, s)
}

// Message is the text a person reads: the body, then the fields.
func Message(ev Event) string {
	var b strings.Builder
	b.WriteString(strings.TrimSpace(ev.Body))
	b.WriteString("\n\n")
	for _, f := range ev.Fields {
		if f[1] == "" {
			continue
		}
		fmt.Fprintf(&b, "%s: %s\n", f[0], f[1])
	}
	return b.String()
}
