package release

import (
	"os"

	"github.com/fno-bridge/s3-fno/internal/imports/filing"
	"github.com/fno-bridge/s3-fno/internal/imports/importmsg"
	"github.com/fno-bridge/s3-fno/internal/shared/routes"
)

// Config is what every import function reads at cold start: the route
// table, the bucket and its layout, the FIFO import queue, and who hears of
// the files filed.
type Config struct {
	routes.Config
	// QueueURL is the FIFO import queue (IMPORT_QUEUE_URL).
	QueueURL string
	// Observers hear of the files routed and rejected (set by main).
	Observers filing.Observers
}

// ConfigFromEnv reads BUCKET, ROUTES, the prefixes and IMPORT_QUEUE_URL
// (getenv: os.Getenv when nil).
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	rc, err := routes.FromEnv(getenv)
	if err != nil {
		return Config{}, err
	}
	q, err := importmsg.QueueURLFromEnv(getenv)
	if err != nil {
		return Config{}, err
	}
	return Config{Config: rc, QueueURL: q}, nil
}
