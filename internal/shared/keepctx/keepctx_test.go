package keepctx_test

import (
	"context"
	"testing"
	"time"

	"github.com/fno-bridge/s3-fno/internal/shared/keepctx"
)

type key struct{}

func TestUntil(t *testing.T) {
	t.Parallel()
	// A cancelled parent: the kept context is live, keeps the parent's
	// values, and ends atLeast from now.
	parent, cancel := context.WithCancel(context.WithValue(context.Background(), key{}, "v"))
	cancel()
	kept, stop := keepctx.Until(parent, time.Minute)
	defer stop()
	if kept.Err() != nil || kept.Value(key{}) != "v" {
		t.Fatalf("kept context of a cancelled parent: err %v, value %v", kept.Err(), kept.Value(key{}))
	}
	if d, ok := kept.Deadline(); !ok || time.Until(d) < 50*time.Second || time.Until(d) > time.Minute {
		t.Fatalf("deadline %v (%v), want about a minute from now", d, ok)
	}

	// A parent with more time left: its deadline, not the shorter one.
	far := time.Now().Add(time.Hour)
	parent, cancel = context.WithDeadline(context.Background(), far)
	defer cancel()
	kept, stop = keepctx.Until(parent, time.Second)
	defer stop()
	if d, _ := kept.Deadline(); !d.Equal(far) {
		t.Fatalf("deadline %v, want the parent's %v", d, far)
	}

	// An expired parent: still atLeast.
	parent, cancel = context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	kept, stop = keepctx.Until(parent, time.Minute)
	defer stop()
	if kept.Err() != nil {
		t.Fatalf("kept context of an expired parent: %v", kept.Err())
	}
}
