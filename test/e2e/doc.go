// Package e2e holds the whole import pipeline's end-to-end test: files
// dropped into a moto bucket travel through real S3 notifications, the
// arrivals queue, the router, the FIFO import queue, the enqueue handler,
// the F&O emulator and the poller, and each ends in exactly one of
// processed/, failed/ or rejected/. It has no non-test code.
package e2e
