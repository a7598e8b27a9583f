package dequeue_test

import "github.com/fno-bridge/s3-fno/internal/local/s3fake"

// memS3 is the in-memory S3 stand-in the fuzz targets use.
type memS3 = s3fake.S3

func newMemS3() *memS3 { return s3fake.New() }
