package poller

import "github.com/fno-bridge/s3-fno/internal/local/s3fake"

// newMemS3 is the in-memory S3 stand-in the fuzz targets use.
func newMemS3() *s3fake.S3 { return s3fake.New() }
