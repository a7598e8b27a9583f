//go:build !race

// The race detector allocates per TLS record, which swamps what these
// measure.

package d365_test

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"testing"

	"github.com/fno-bridge/s3-fno/pkg/d365"
	"github.com/fno-bridge/s3-fno/pkg/d365/d365test"
)

// patternReader yields n bytes without holding them: a stand-in for an S3
// object body of any size.
type patternReader struct{ left int64 }

func (p *patternReader) Read(b []byte) (int, error) {
	if p.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(b)) > p.left {
		b = b[:p.left]
	}
	for i := range b {
		b[i] = byte('a' + i%26)
	}
	p.left -= int64(len(b))
	return len(b), nil
}

func enqueueSize(b testing.TB, c *d365.Client, size int64) {
	_, err := c.Enqueue(context.Background(), d365.EnqueueRequest{
		ActivityID: importActivity, Entity: "Customer groups", Body: &patternReader{left: size}, Size: size,
	})
	if err != nil {
		b.Fatal(err)
	}
}

// allocatedBy is the bytes the whole process allocated during f (the
// emulator's side included: it is in the same process).
func allocatedBy(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// Enqueue streams: the bytes allocated to send a 64 MiB body are about those
// of a 1 MiB body, not 64 times more.
func TestEnqueueMemoryDoesNotGrowWithBodySize(t *testing.T) {
	e := d365test.NewT(t, d365test.Options{KeepEnqueuedBodyBytes: -1})
	e.AddActivity(importActivity, d365test.Activity{})
	c := newClient(t, e)
	enqueueSize(t, c, 1) // warm up: token, connection
	small := allocatedBy(func() { enqueueSize(t, c, 1<<20) })
	large := allocatedBy(func() { enqueueSize(t, c, 64<<20) })
	t.Logf("allocated: 1 MiB body %d B, 64 MiB body %d B", small, large)
	if large > 4*small+(1<<20) {
		t.Fatalf("a 64 MiB enqueue allocated %d B against %d B for 1 MiB: the body is being buffered", large, small)
	}
}

// BenchmarkEnqueue compares bytes/op for 1 MiB and 256 MiB bodies in one run
// (go test -bench Enqueue -benchmem ./pkg/d365/): they should be about equal.
func BenchmarkEnqueue(b *testing.B) {
	e := d365test.NewT(b, d365test.Options{KeepEnqueuedBodyBytes: -1})
	e.AddActivity(importActivity, d365test.Activity{})
	c := newClient(b, e)
	enqueueSize(b, c, 1)
	for _, size := range []int64{1 << 20, 256 << 20} {
		b.Run(fmt.Sprintf("%dMiB", size>>20), func(b *testing.B) {
			b.SetBytes(size)
			b.ReportAllocs()
			for b.Loop() {
				enqueueSize(b, c, size)
			}
		})
	}
}
