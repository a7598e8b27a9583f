// Command router is the router function: S3 notifications from the
// standard "arrivals" queue in, one FIFO import message per new file out
// (message group = the route's entity). See internal/router.
package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/fno-bridge/s3-fno/internal/imports/router"
	"github.com/fno-bridge/s3-fno/internal/shared/awsenv"
)

func main() {
	slog.SetDefault(lambdacontext.NewLogger())
	h, err := build(context.Background())
	if err != nil {
		slog.Error("router: configuration", "error", err.Error())
		os.Exit(1)
	}
	lambda.Start(h.Handle)
}

func build(ctx context.Context) (*router.Router, error) {
	cfg, err := router.ConfigFromEnv(os.Getenv)
	if err != nil {
		return nil, err
	}
	aws, err := awsenv.Load(ctx)
	if err != nil {
		return nil, err
	}
	return router.New(cfg, awsenv.S3(aws), awsenv.SQS(aws), slog.Default())
}
