// Package startup is what every function's main does around lambda.Start:
// JSON logs through the Lambda log handler, the AWS configuration and
// clients from the environment, and one clear log line and exit when the
// configuration is unusable. Nothing here touches the network at cold start.
package startup

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/smithy-go/logging"

	fnoconfig "github.com/fno-bridge/s3-fno/internal/shared/config"
	"github.com/fno-bridge/s3-fno/internal/shared/fnoenv"
	"github.com/fno-bridge/s3-fno/internal/shared/layout"
	"github.com/fno-bridge/s3-fno/internal/shared/metrics"
	"github.com/fno-bridge/s3-fno/internal/shared/notify"
	"github.com/fno-bridge/s3-fno/internal/shared/routes"
	"github.com/fno-bridge/s3-fno/pkg/d365"
)

// Env is what a function's constructor reads: its variables, the AWS
// configuration, the logger and the metrics.
type Env struct {
	Getenv func(string) string
	AWS    aws.Config
	Log    *slog.Logger
	// Function is the function's name in the template (router, enqueue,
	// poller, dequeue): the Function dimension of its metrics.
	Function string
	// Metrics is the execution environment's recorder (STACK_NAME);
	// handlers flush it at the end of each invocation.
	Metrics *metrics.Recorder

	// The AWS clients, made once by Load (no network) and shared by all
	// that ask; an Env made otherwise makes a new one each time.
	s3  *s3.Client
	sqs *sqs.Client
	sns *sns.Client
}

// Load reads the shared AWS configuration (region defaults to us-east-1).
// The SDK honours AWS_ENDPOINT_URL itself, which local stand-ins use.
func Load(ctx context.Context, getenv func(string) string, log *slog.Logger) (Env, error) {
	if log == nil {
		log = slog.Default()
	}
	cfg, err := config.LoadDefaultConfig(ctx, config.WithLogger(sdkLogger{log}))
	if err != nil {
		return Env{}, fmt.Errorf("aws config: %w", err)
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	e := Env{Getenv: getenv, AWS: cfg, Log: log, Metrics: metrics.FromEnv(getenv)}
	e.s3, e.sqs, e.sns = e.S3(), e.SQS(), e.SNS()
	return e, nil
}

// sdkLogger sends the AWS SDK's own log lines (such as "Response has no
// supported checksum") through the function's JSON logger, at its levels,
// instead of as plain text.
type sdkLogger struct{ log *slog.Logger }

func (l sdkLogger) Logf(c logging.Classification, format string, v ...any) {
	level := slog.LevelDebug
	if c == logging.Warn {
		level = slog.LevelWarn
	}
	l.log.Log(context.Background(), level, "aws sdk: "+fmt.Sprintf(format, v...))
}

// S3 is an S3 client, path-style when S3_FORCE_PATH_STYLE=true (moto).
func (e Env) S3() *s3.Client {
	if e.s3 != nil {
		return e.s3
	}
	return s3.NewFromConfig(e.AWS, func(o *s3.Options) {
		o.UsePathStyle = e.Getenv("S3_FORCE_PATH_STYLE") == "true"
	})
}

// SQS is an SQS client.
func (e Env) SQS() *sqs.Client {
	if e.sqs != nil {
		return e.sqs
	}
	return sqs.NewFromConfig(e.AWS)
}

// SNS is an SNS client.
func (e Env) SNS() *sns.Client {
	if e.sns != nil {
		return e.sns
	}
	return sns.NewFromConfig(e.AWS)
}

// FnO is the F&O client from the FNO_* settings; limiter (may be nil)
// paces every request. F&O's 429 and 5xx answers are counted.
func (e Env) FnO(limiter d365.Limiter) (*d365.Client, error) {
	return fnoenv.ClientFromEnv(e.AWS, fnoenv.Options{Limiter: limiter, Logger: e.Log, Observe: func(status int) {
		switch {
		case status == 429:
			e.Metrics.Add("FnoThrottled", 1, metrics.Function, e.Function)
		case status >= 500:
			e.Metrics.Add("FnoServerErrors", 1, metrics.Function, e.Function)
		}
	}})
}

// Notifier tells people of what needs them, through the topic in
// NOTIFY_TOPIC_ARN (none: it only logs), with its once-only markers in
// bucket.
func (e Env) Notifier(bucket string, l layout.Layout) *notify.Notifier {
	return &notify.Notifier{Topic: e.Getenv("NOTIFY_TOPIC_ARN"), Stack: e.Getenv("STACK_NAME"), Function: e.Function,
		SNS: e.SNS(), S3: e.S3(), Bucket: bucket, Layout: l, Log: e.Log, Metrics: e.Metrics}
}

// FollowConfig makes the route table follow the configuration document in
// the bucket, looked at every CONFIG_REFRESH (default 30 seconds), unless
// ROUTES fixed one. It makes no call now: the document is read on the
// handler's first Refresh.
func (e Env) FollowConfig(c *routes.Config) {
	if c.Routes != nil {
		return
	}
	st := &fnoconfig.Store{S3: e.S3(), Bucket: c.Bucket, Key: c.ConfigKey, Log: e.Log,
		Notify: e.Notifier(c.Bucket, c.Layout), Metrics: e.Metrics}
	every := fnoconfig.RefreshEvery
	if c.ConfigRefresh > 0 {
		every = c.ConfigRefresh
	}
	c.Routes = st.Routes(every, nil)
}

// Start builds a function's handler from the environment and hands it to
// the Lambda runtime. A build error is logged (naming the function) and
// ends the process, so Lambda reports an init failure with that line.
func Start[H any](name string, build func(context.Context, Env) (H, error)) {
	log := lambdacontext.NewLogger()
	slog.SetDefault(log)
	ctx := context.Background()
	env, err := Load(ctx, os.Getenv, log)
	env.Function = name
	if err != nil {
		log.Error(name+": cannot start", "error", err.Error())
		os.Exit(1)
	}
	h, err := build(ctx, env)
	if err != nil {
		log.Error(name+": cannot start", "error", err.Error())
		os.Exit(1)
	}
	lambda.Start(h)
}
