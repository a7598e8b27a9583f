package routes

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/fno-bridge/s3-fno/internal/shared/layout"
)

// Config is what every import function reads at cold start.
type Config struct {
	Bucket string
	// Routes is fixed by ROUTES (local runs and tests), or nil: then main
	// makes it follow the configuration document at ConfigKey.
	Routes    *Table
	ConfigKey string
	// ConfigRefresh is how often the route table looks at the document
	// again (CONFIG_REFRESH); 0 is the default, 30 seconds. Local runs
	// shorten it.
	ConfigRefresh time.Duration
	Layout        layout.Layout
	// PackageScope is how far one package import at a time reaches
	// (PACKAGE_IMPORT_SCOPE), for dataProject routes.
	PackageScope PackageScope
}

// FromEnv reads BUCKET, ROUTES or CONFIG_KEY and CONFIG_REFRESH, the
// prefix variables and PACKAGE_IMPORT_SCOPE through getenv (os.Getenv when
// nil) and validates them.
func FromEnv(getenv func(string) string) (Config, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	c := Config{Bucket: strings.TrimSpace(getenv("BUCKET"))}
	if c.Bucket == "" {
		return Config{}, fmt.Errorf("config: BUCKET is required")
	}
	c.ConfigKey = strings.TrimSpace(getenv("CONFIG_KEY"))
	if c.ConfigKey == "" {
		c.ConfigKey = layout.DefaultConfigKey
	}
	if v := strings.TrimSpace(getenv("CONFIG_REFRESH")); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < time.Second || d > 10*time.Minute {
			return Config{}, fmt.Errorf("config: CONFIG_REFRESH %q must be a duration from 1s to 10m, such as \"30s\"", v)
		}
		c.ConfigRefresh = d
	}
	if getenv("ROUTES") != "" {
		t, err := Parse(getenv("ROUTES"))
		if err != nil {
			return Config{}, fmt.Errorf("config: %w", err)
		}
		c.Routes = t
	}
	l, err := layout.FromEnv(getenv)
	if err != nil {
		return Config{}, err
	}
	c.Layout = l
	if c.PackageScope, err = PackageScopeFromEnv(getenv); err != nil {
		return Config{}, err
	}
	return c, nil
}
