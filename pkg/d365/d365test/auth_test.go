package d365test_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/fno-bridge/s3-fno/pkg/d365/d365test"
)

func TestBearerRequired(t *testing.T) {
	t.Parallel()
	v := setup(t, d365test.Options{})
	corr := v.e.QueueExport(actExport, d365test.Export{Body: []byte("zip")})
	_ = corr
	paths := []struct{ name, method, path string }{
		{"enqueue", http.MethodPost, "/api/connector/enqueue/" + actImport},
		{"dequeue", http.MethodGet, "/api/connector/dequeue/" + actExport},
		{"download", http.MethodGet, "/api/connector/download/" + actExport + "?correlation-id=" + corr + "&blob=x"},
		{"ack", http.MethodPost, "/api/connector/ack/" + actExport},
		{"jobstatus", http.MethodGet, "/api/connector/jobstatus/" + actImport + "?jobId=x"},
		{"odata", http.MethodPost, "/data/DataManagementDefinitionGroups/Microsoft.Dynamics.DataEntities.GetMessageStatus"},
		{"unknown path", http.MethodGet, "/data/Customers"},
	}
	for _, p := range paths {
		for _, auth := range []struct{ name, header string }{
			{"none", ""}, {"not bearer", "Basic Zm9vOmJhcg=="}, {"unknown token", "Bearer emu.forged"},
		} {
			t.Run(p.name+"/"+auth.name, func(t *testing.T) {
				r := v.do(context.Background(), p.method, v.e.URL()+p.path, strings.NewReader("{}"), "Authorization", auth.header)
				if r.StatusCode != http.StatusUnauthorized {
					t.Fatalf("status %d, want 401", r.StatusCode)
				}
				if !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Bearer ") {
					t.Errorf("WWW-Authenticate = %q", r.Header.Get("WWW-Authenticate"))
				}
			})
		}
	}
	if n := len(v.e.Messages()); n != 0 {
		t.Errorf("an unauthenticated enqueue stored %d messages", n)
	}
}

func TestAllowedApps(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		opts   d365test.Options
		denied int
	}{
		{"401 by default", d365test.Options{}, http.StatusUnauthorized},
		{"403 as an option", d365test.Options{Unauthorized403: true}, http.StatusForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			v := setup(t, tc.opts)
			v.e.AddApp(d365test.App{ClientID: "other-app", ClientSecret: "s2"})
			v.e.AddApp(d365test.App{ClientID: "not-in-fo", ClientSecret: "s3", NotInFO: true})
			shared := "9e8d7c6b-5a49-4382-9170-6f5e4d3c2b1a"
			v.e.AddActivity(shared, d365test.Activity{AllowedApps: []string{v.e.ClientID(), "other-app"}})
			other := v.tokenFor("other-app", "s2")
			notInFO := v.tokenFor("not-in-fo", "s3")
			enq := func(tok, act string) int {
				return v.do(context.Background(), http.MethodPost, v.e.URL()+"/api/connector/enqueue/"+act,
					strings.NewReader("a"), "Authorization", "Bearer "+tok).StatusCode
			}
			if got := enq(v.token, actImport); got != http.StatusOK {
				t.Errorf("configured app on a default activity: %d", got)
			}
			if got := enq(other, actImport); got != tc.denied {
				t.Errorf("other app on an activity that does not allow it: %d, want %d", got, tc.denied)
			}
			if got := enq(other, shared); got != http.StatusOK {
				t.Errorf("other app where allowed: %d", got)
			}
			if got := enq(notInFO, shared); got != http.StatusUnauthorized {
				t.Errorf("app unknown to F&O: %d, want 401", got)
			}
			odata := v.do(context.Background(), http.MethodPost, v.e.URL()+"/data/DataManagementDefinitionGroups/Microsoft.Dynamics.DataEntities.GetMessageStatus",
				strings.NewReader(`{"messageId":"x"}`), "Authorization", "Bearer "+notInFO)
			if odata.StatusCode != http.StatusUnauthorized {
				t.Errorf("OData with an app unknown to F&O: %d", odata.StatusCode)
			}
			if got := len(v.e.Messages()); got != 2 {
				t.Errorf("%d messages stored, want 2 (refused enqueues store nothing)", got)
			}
		})
	}
}

func TestLogNeverShowsSecrets(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var lines []string
	v := setup(t, d365test.Options{Logf: func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		lines = append(lines, fmt.Sprintf(format, args...))
	}})
	v.enqueue(actImport, "Customer groups", "f.csv", []byte("a"))
	_, u := v.writeURL("p.zip")
	v.putBlob(u, []byte("x"), "x-ms-blob-type", "BlockBlob")
	sig, _ := url.Parse(u)
	mu.Lock()
	defer mu.Unlock()
	all := strings.Join(lines, "\n")
	if len(lines) < 4 || !strings.Contains(all, "enqueue") || !strings.Contains(all, "blob-put") {
		t.Fatalf("log:\n%s", all)
	}
	for _, secret := range []string{v.token, v.e.ClientSecret(), sig.Query().Get("sig"), url.QueryEscape(sig.Query().Get("sig"))} {
		if strings.Contains(all, secret) {
			t.Errorf("log holds a secret %q:\n%s", secret, all)
		}
	}
}
