package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/fno-bridge/s3-fno/internal/ops/status"
)

// The F&O STATUSES column lists its statuses in one order, whatever order
// the map gives them in, so two runs of status can be compared by eye.
func TestStatusTableListsStatusesInOrder(t *testing.T) {
	r := statusReport{At: time.Now(), Routes: []status.RouteView{{Route: "customers", InFlight: 6,
		Statuses: map[string]int{"Queued": 3, "InProcess": 1, status.NotChecked: 2}}}}
	want := "InProcess 1, Queued 3, " + status.NotChecked + " 2"
	for range 20 {
		var b bytes.Buffer
		if err := r.Table(&b); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(b.String(), want) {
			t.Fatalf("want %q in\n%s", want, b.String())
		}
	}
}
