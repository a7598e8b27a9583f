package stack

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/fno-bridge/s3-fno/internal/shared/config"
	"github.com/fno-bridge/s3-fno/internal/shared/routes"
)

// Document is the configuration the import functions go by: the routes of
// ROUTES when it is set (a document without jobs), else the configuration
// document in the bucket.
func (s *Stack) Document(ctx context.Context, c config.S3) (*config.Document, error) {
	if err := s.NeedBucket(); err != nil {
		return nil, err
	}
	rc, err := routes.FromEnv(s.Getenv)
	if err != nil {
		return nil, err
	}
	if rc.Routes != nil {
		return &config.Document{Routes: rc.Routes}, nil
	}
	// The functions log and tell of a document they refuse; the tool only
	// needs what they go by.
	st := &config.Store{S3: c, Bucket: s.Bucket, Key: rc.ConfigKey, Log: slog.New(slog.DiscardHandler)}
	doc, err := st.Load(ctx)
	if err != nil {
		return nil, fmt.Errorf("configuration: %w", err)
	}
	return doc, nil
}
