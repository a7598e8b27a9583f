package exporter_test

import "github.com/fno-bridge/s3-fno/internal/mems3"

// memS3 is the in-memory S3 stand-in the fuzz targets use.
type memS3 = mems3.S3

func newMemS3() *memS3 { return mems3.New() }
