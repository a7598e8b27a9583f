// Package bench holds the project's cross-cutting benchmarks: the import
// stream (S3 → enqueue handler → F&O) and the package import (a plain file
// wrapped in its route's template on its way to blob storage), each
// against a plain copy of the same bytes; the export landing (F&O →
// dequeue handler → S3) against a plain SDK multipart upload; the requests
// of an imported file's whole life, by stage; routing; release passes; the
// poller at scale; the poll schedule's simulation; and the functions' cold
// start. Throughput is compared with baselines measured the same way in the
// same run. It is local tooling and never ships in a bootstrap.
//
// Everything is in _test.go files; `make bench` (bench/run.sh) runs every
// sub-benchmark in its own process, so the peak RSS each one reports
// (VmHWM) is its own, and writes bench/RESULTS.md with its SVG charts
// (bench/report, gonum.org/v1/plot). The one test here
// (TestPollSchedule) is a deterministic simulation of the poller's back-off
// under its request budget and runs with `make test`.
package bench
