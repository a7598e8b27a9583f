package d365test_test

import (
	"net/http"
	"testing"

	"github.com/fno-bridge/s3-fno/pkg/d365/d365test"
)

func TestSmoke(t *testing.T) {
	v := setup(t, d365test.Options{})
	id := v.enqueue(actImport, "Customer groups", "a.csv", []byte("x,y\n"))
	if got := v.status(id); got != "Enqueued" {
		t.Fatalf("status %q", got)
	}
	v.e.RunToCompletion()
	if got := v.status(id); got != "Processed" {
		t.Fatalf("status %q", got)
	}
	r := v.fo(http.MethodGet, "/api/connector/dequeue/"+actExport, nil)
	if r.StatusCode != 204 {
		t.Fatalf("dequeue %d", r.StatusCode)
	}
}
