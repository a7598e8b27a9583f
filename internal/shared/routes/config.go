package routes

import (
	"fmt"
	"os"
	"strings"

	"github.com/fno-bridge/s3-fno/internal/shared/layout"
)

// Config is what every import function reads at cold start.
type Config struct {
	Bucket string
	Routes *Table
	Layout layout.Layout
}

// FromEnv reads BUCKET, ROUTES and the prefix variables through getenv
// (os.Getenv when nil) and validates them.
func FromEnv(getenv func(string) string) (Config, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	c := Config{Bucket: strings.TrimSpace(getenv("BUCKET"))}
	if c.Bucket == "" {
		return Config{}, fmt.Errorf("config: BUCKET is required")
	}
	t, err := Parse(getenv("ROUTES"))
	if err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	c.Routes = t
	l, err := layout.FromEnv(getenv)
	if err != nil {
		return Config{}, err
	}
	c.Layout = l
	return c, nil
}
