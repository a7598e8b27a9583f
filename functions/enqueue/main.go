// Command enqueue is the enqueue function: FIFO import messages in, each
// file streamed from S3 to F&O's enqueue endpoint in order, with an
// idempotency marker and a ledger record per file. See internal/importer.
package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/fno-bridge/s3-fno/internal/imports/enqueue"
	"github.com/fno-bridge/s3-fno/internal/shared/awsenv"
	"github.com/fno-bridge/s3-fno/internal/shared/fnoenv"
)

func main() {
	slog.SetDefault(lambdacontext.NewLogger())
	h, err := build(context.Background())
	if err != nil {
		slog.Error("enqueue: configuration", "error", err.Error())
		os.Exit(1)
	}
	lambda.Start(h.Handle)
}

func build(ctx context.Context) (*enqueue.Handler, error) {
	cfg, err := enqueue.ConfigFromEnv(os.Getenv)
	if err != nil {
		return nil, err
	}
	aws, err := awsenv.Load(ctx)
	if err != nil {
		return nil, err
	}
	client, err := fnoenv.ClientFromEnv(aws, fnoenv.Options{Logger: slog.Default()})
	if err != nil {
		return nil, err
	}
	return enqueue.New(cfg, awsenv.S3(aws), client, slog.Default())
}
