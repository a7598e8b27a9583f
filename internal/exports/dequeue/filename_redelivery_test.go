package dequeue_test

import (
	"strings"
	"testing"
	"time"

	"github.com/fno-bridge/s3-fno/pkg/d365/d365test"
)

// An export landed under F&O's file name and handed out again (its ack was
// lost) is recognised from its marker and acknowledged, not refused as a
// marker pointing somewhere foreign on every delivery.
func TestRedeliveredExportKeepsItsFileName(t *testing.T) {
	t.Parallel()
	v := newEnv(t, d365test.Options{})
	corr := v.e.QueueExport(actA, d365test.Export{Body: []byte("GROUP\n10\n"), FileName: "customer groups.csv"})
	v.e.Inject(d365test.Fault{Endpoint: "ack", Count: 1, DropAck: true})
	h := v.handler(nil)
	first := v.run(h, input("cg", actA, ""))
	if first.Landed != 1 || !strings.HasSuffix(first.Files[0].Key, corr+"-customer groups.csv") {
		t.Fatalf("first run: %+v", first)
	}
	v.e.Advance(31 * time.Minute)
	second := v.run(h, input("cg", actA, ""))
	if second.Dequeued != 1 || second.AlreadyLanded != 1 || second.Acked != 1 || len(second.Errors) != 0 {
		t.Fatalf("second run: %+v", second)
	}
	if got := v.e.Acked(actA); len(got) != 1 || got[0] != corr {
		t.Fatalf("acked %v, want [%s]", got, corr)
	}
}
