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

	"github.com/fno-bridge/s3-fno/internal/awsenv"
	"github.com/fno-bridge/s3-fno/internal/fnoenv"
	"github.com/fno-bridge/s3-fno/internal/importer"
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

func build(ctx context.Context) (*importer.Handler, error) {
	cfg, err := importer.ConfigFromEnv(os.Getenv)
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
	return importer.New(cfg, awsenv.S3(aws), client, slog.Default())
}
