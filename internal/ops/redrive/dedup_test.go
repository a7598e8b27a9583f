package redrive_test

import (
	"testing"

	"github.com/fno-bridge/s3-fno/internal/ops/redrive"
)

// A dead letter goes back with a deduplication ID that is not its original
// (SQS would drop it within five minutes of the first send), differs from
// one redrive (receipt) to the next and between dead letters, and fits
// SQS's 128 characters.
func TestRedriveDedupID(t *testing.T) {
	a := redrive.RedriveDedupID("orig-1", "receipt-1")
	switch {
	case a == "orig-1":
		t.Fatal("the original deduplication ID was kept")
	case a != redrive.RedriveDedupID("orig-1", "receipt-1"):
		t.Fatal("not a function of the dead letter and its receipt")
	case a == redrive.RedriveDedupID("orig-1", "receipt-2"):
		t.Fatal("a second redrive of the same dead letter gets the first one's ID")
	case a == redrive.RedriveDedupID("orig-2", "receipt-1"):
		t.Fatal("two dead letters share an ID")
	case len(a) > 128:
		t.Fatalf("%d characters, SQS takes 128", len(a))
	}
}
