package d365test_test

import (
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/fno-bridge/s3-fno/pkg/d365/d365test"
)

func TestFaultFunc(t *testing.T) {
	t.Parallel()
	v := setup(t, d365test.Options{})
	var mu sync.Mutex
	var seen []string
	v.e.SetFaultFunc(func(endpoint string, r *http.Request) *d365test.Fault {
		mu.Lock()
		seen = append(seen, endpoint)
		mu.Unlock()
		if endpoint == "enqueue" && strings.Contains(r.Header.Get("x-ms-dyn-externalidentifier"), "poison") {
			return &d365test.Fault{Status: http.StatusBadGateway}
		}
		return nil
	})

	// Aimed at one file: the others pass, and the faulted one stores nothing.
	r := v.fo(http.MethodPost, "/api/connector/enqueue/"+actImport, []byte("a"), "x-ms-dyn-externalidentifier", "inbound/x/poison.csv")
	if r.StatusCode != http.StatusBadGateway {
		t.Fatalf("aimed fault: %d, want 502", r.StatusCode)
	}
	v.enqueue(actImport, "", "inbound/x/fine.csv", []byte("b"))
	if n := len(v.e.Messages()); n != 1 || v.e.Faulted("enqueue") != 1 || v.e.Requests("enqueue") != 2 {
		t.Fatalf("%d messages, Faulted %d, Requests %d; want 1, 1, 2", n, v.e.Faulted("enqueue"), v.e.Requests("enqueue"))
	}

	// An injected fault comes first; the function is not asked about it.
	v.e.Inject(d365test.Fault{Endpoint: "dequeue", Count: 1, Status: http.StatusInternalServerError})
	mu.Lock()
	before := len(seen)
	mu.Unlock()
	if got := v.fo(http.MethodGet, "/api/connector/dequeue/"+actExport, nil).StatusCode; got != http.StatusInternalServerError {
		t.Fatalf("injected fault: %d", got)
	}
	mu.Lock()
	asked := len(seen) - before
	mu.Unlock()
	if asked != 0 {
		t.Errorf("the function was asked about a request an injected fault answered")
	}

	// nil removes it.
	v.e.SetFaultFunc(nil)
	if r := v.fo(http.MethodPost, "/api/connector/enqueue/"+actImport, []byte("a"), "x-ms-dyn-externalidentifier", "poison"); r.StatusCode != http.StatusOK {
		t.Errorf("after SetFaultFunc(nil): %d", r.StatusCode)
	}
}
