// Command dequeue is the export Lambda function: EventBridge Scheduler
// invokes it once per export job with a constant JSON input
// ({"job":"customer-groups","activityId":"<guid>",...}); it lands the job's
// F&O exports in S3 and acknowledges them (see internal/exporter).
//
// Environment: BUCKET; OUTBOUND_PREFIX, STATE_PREFIX, DEADLINE_MARGIN,
// UPLOAD_PART_MIB, UPLOAD_CONCURRENCY (optional); the F&O settings of
// internal/fnoenv; the AWS SDK's own variables. GOMEMLIMIT, when set,
// replaces the soft memory limit derived from the part size and
// concurrency.
package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/fno-bridge/s3-fno/internal/exports/dequeue"
	"github.com/fno-bridge/s3-fno/internal/shared/awsenv"
	"github.com/fno-bridge/s3-fno/internal/shared/fnoenv"
)

func main() {
	slog.SetDefault(lambdacontext.NewLogger())
	h, err := newHandler(context.Background(), os.Getenv)
	if err != nil {
		slog.Error("dequeue: cannot start", "error", err.Error())
		os.Exit(1)
	}
	// Keep the heap in use within the landing's memory bound between
	// uploads (see dequeue.Config.MemoryLimit); GOMEMLIMIT overrides.
	limit, fromEnv := dequeue.ApplyMemoryLimit(h.Config(), os.Getenv)
	source := "part size × concurrency + 32 MiB"
	if fromEnv {
		source = "GOMEMLIMIT"
	}
	slog.Info("dequeue: soft memory limit", "bytes", limit, "MiB", limit>>20, "source", source)
	lambda.Start(h.Handle)
}

// newHandler builds the handler from the environment. It makes no network
// calls: the F&O secret is fetched on the first token request.
func newHandler(ctx context.Context, getenv func(string) string) (*dequeue.Handler, error) {
	cfg, err := dequeue.ConfigFromEnv(getenv)
	if err != nil {
		return nil, err
	}
	awsCfg, err := awsenv.Load(ctx)
	if err != nil {
		return nil, err
	}
	fno, err := fnoenv.ClientFromEnv(awsCfg, fnoenv.Options{Logger: slog.Default()})
	if err != nil {
		return nil, err
	}
	cfg.Logger = slog.Default()
	return dequeue.New(cfg, fno, awsenv.S3(awsCfg))
}
