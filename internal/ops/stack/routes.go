package stack

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/fno-bridge/s3-fno/internal/shared/config"
	"github.com/fno-bridge/s3-fno/internal/shared/routes"
)

// Routes is the route table the import functions go by: ROUTES when it is
// set, else the configuration document in the bucket.
func (s *Stack) Routes(ctx context.Context, c config.S3) ([]routes.Route, error) {
	if err := s.NeedBucket(); err != nil {
		return nil, err
	}
	rc, err := routes.FromEnv(s.Getenv)
	if err != nil {
		return nil, err
	}
	if rc.Routes != nil {
		return rc.Routes.All(), nil
	}
	// The functions log and tell of a document they refuse; the tool only
	// needs the routes they go by.
	st := &config.Store{S3: c, Bucket: s.Bucket, Key: rc.ConfigKey, Log: slog.New(slog.DiscardHandler)}
	doc, err := st.Load(ctx)
	if err != nil {
		return nil, fmt.Errorf("routes: %w", err)
	}
	return doc.Routes.All(), nil
}
