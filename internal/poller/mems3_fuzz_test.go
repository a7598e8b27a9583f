package poller

import "github.com/fno-bridge/s3-fno/internal/mems3"

// newMemS3 is the in-memory S3 stand-in the fuzz targets use.
func newMemS3() *mems3.S3 { return mems3.New() }
