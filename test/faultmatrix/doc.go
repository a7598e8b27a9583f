// Package faultmatrix proves the pipeline under faults and load. It has no
// non-test code: its tests run the four handlers in-process, driven the way
// Lambda drives them (localrun.SQSMapping for the queues, a schedule for the
// poller and the exports, a function deadline after which nothing the
// handler still does reaches S3 or F&O), against real stand-ins: moto S3
// with S3 notifications to the standard arrivals queue, the FIFO import
// queue with its FIFO dead-letter queue (localrun.Provision), and the F&O
// emulator.
//
// Every test ends with the same accounting: each dropped file is in exactly
// one of processed/, failed/ or rejected/ with its result or reason document
// beside it (or its FIFO message is in the dead-letter queue and the file
// is still in inbound/), nothing is left in the ledger, each file reached
// F&O at most once (except in the documented duplicate window), each
// entity's files reached F&O in the order of the FIFO queue, and every
// export landed once and was acknowledged.
//
//   - matrix_test.go: 500, 502 and 429 (Retry-After) on every call the
//     pipeline makes; connection resets; answers slower than the deadline;
//     S3 GetObject failures; duplicate S3 events and FIFO redeliveries; the
//     enqueue function killed after F&O accepted a file; the poller killed
//     between moving a file and retiring its record; a lost export ack.
//   - soak_test.go: 200 files over 10 entities with faults at random from
//     a seed (FAULT_SEED overrides it), and a summary of the counts.
//
// FAULTMATRIX_LOG=1 shows the handlers' logs.
package faultmatrix
