package stack

import (
	"context"
	"fmt"
	"os"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/scheduler"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/smithy-go/logging"
)

// Clients are the AWS clients the tool uses, one configuration for all.
type Clients struct {
	AWS            aws.Config
	S3             *s3.Client
	SQS            *sqs.Client
	SNS            *sns.Client
	Secrets        *secretsmanager.Client
	CloudFormation *cloudformation.Client
	Lambda         *lambda.Client
	Scheduler      *scheduler.Client
}

// NewClients builds the clients from the AWS configuration (profile,
// environment, shared files), then --region, --profile and --endpoint-url,
// and an env file's AWS_REGION, AWS_ENDPOINT_URL, S3_FORCE_PATH_STYLE and
// AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (the local runner's). The
// region defaults to us-east-1, as the functions'.
func NewClients(ctx context.Context, f Flags, env map[string]string) (*Clients, error) {
	// The SDK's own notices (such as "Response has no supported
	// checksum") are not for the operator.
	opts := []func(*config.LoadOptions) error{config.WithLogger(logging.Nop{})}
	region := f.Region
	if region == "" {
		region = env["AWS_REGION"]
	}
	if region != "" {
		opts = append(opts, config.WithRegion(region))
	}
	if f.Profile != "" {
		opts = append(opts, config.WithSharedConfigProfile(f.Profile))
	}
	if id, secret := env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]; id != "" && secret != "" {
		opts = append(opts, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(id, secret, env["AWS_SESSION_TOKEN"])))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("AWS configuration: %w (check --profile and the AWS_* variables)", err)
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	endpoint := f.EndpointURL
	if endpoint == "" {
		endpoint = env["AWS_ENDPOINT_URL"]
	}
	if endpoint != "" {
		cfg.BaseEndpoint = aws.String(endpoint)
	}
	pathStyle := endpoint != "" || env["S3_FORCE_PATH_STYLE"] == "true" || os.Getenv("S3_FORCE_PATH_STYLE") == "true"
	return &Clients{
		AWS: cfg,
		S3: s3.NewFromConfig(cfg, func(o *s3.Options) {
			o.UsePathStyle = pathStyle
		}),
		SQS: sqs.NewFromConfig(cfg), SNS: sns.NewFromConfig(cfg), Secrets: secretsmanager.NewFromConfig(cfg),
		CloudFormation: cloudformation.NewFromConfig(cfg), Lambda: lambda.NewFromConfig(cfg), Scheduler: scheduler.NewFromConfig(cfg),
	}, nil
}
