// Command poller is the scheduled poller function: it follows every
// enqueued file to its final status in F&O, moves it to processed/ or
// failed/ with a result document, and sweeps inbound/ for files whose
// notification was lost. See internal/poller.
package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/fno-bridge/s3-fno/internal/imports/poller"
	"github.com/fno-bridge/s3-fno/internal/shared/awsenv"
	"github.com/fno-bridge/s3-fno/internal/shared/fnoenv"
)

func main() {
	slog.SetDefault(lambdacontext.NewLogger())
	h, err := build(context.Background())
	if err != nil {
		slog.Error("poller: configuration", "error", err.Error())
		os.Exit(1)
	}
	lambda.Start(h.Handle)
}

func build(ctx context.Context) (*poller.Poller, error) {
	cfg, err := poller.ConfigFromEnv(os.Getenv)
	if err != nil {
		return nil, err
	}
	aws, err := awsenv.Load(ctx)
	if err != nil {
		return nil, err
	}
	// One budget per execution environment, shared by every invocation:
	// the client waits on it before each request, retries included.
	budget := poller.NewBudget(cfg.BudgetPerMinute)
	client, err := fnoenv.ClientFromEnv(aws, fnoenv.Options{Limiter: budget, Logger: slog.Default()})
	if err != nil {
		return nil, err
	}
	return poller.New(cfg, awsenv.S3(aws), client, budget, awsenv.SQS(aws), slog.Default())
}
