package d365test_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/fno-bridge/s3-fno/pkg/d365/d365test"
)

func TestThrottleHasNoSideEffect(t *testing.T) {
	t.Parallel()
	v := setup(t, d365test.Options{})
	v.e.Inject(d365test.Fault{Endpoint: "enqueue", Count: 1, Status: 429, RetryAfter: 7})
	r := v.fo(http.MethodPost, "/api/connector/enqueue/"+actImport, []byte("a"))
	if r.StatusCode != 429 || r.Header.Get("Retry-After") != "7" ||
		string(r.body) != "This request could not be processed at this time due to system experiencing high resource utilization. Retry the request after 7 seconds" {
		t.Fatalf("%d Retry-After=%q %q", r.StatusCode, r.Header.Get("Retry-After"), r.body)
	}
	if n := len(v.e.Messages()); n != 0 {
		t.Fatalf("a throttled enqueue stored %d messages", n)
	}
	v.enqueue(actImport, "", "", []byte("a"))
	if got, f := v.e.Requests("enqueue"), v.e.Faulted("enqueue"); got != 2 || f != 1 {
		t.Errorf("Requests=%d Faulted=%d, want 2 and 1", got, f)
	}
	if n := len(v.e.Messages()); n != 1 {
		t.Errorf("%d messages after the retry", n)
	}
}

func TestFaultMatching(t *testing.T) {
	t.Parallel()
	v := setup(t, d365test.Options{})
	v.e.Inject(d365test.Fault{Count: 2, Status: 429, RetryAfter: -1}) // any F&O endpoint
	codes := []int{}
	for i := 0; i < 3; i++ {
		codes = append(codes, v.action("GetMessageStatus", map[string]string{"messageId": "x"}).status)
	}
	if codes[0] != 429 || codes[1] != 429 || codes[2] != 200 {
		t.Errorf("statuses %v, want 429 429 200 (Count 2)", codes)
	}
	// An endpoint-less fault never touches Entra or blob.
	v.e.Inject(d365test.Fault{Status: 500})
	v.tokenFor(v.e.ClientID(), v.e.ClientSecret())
	if got := v.fo(http.MethodGet, "/api/connector/dequeue/"+actExport, nil).StatusCode; got != 500 {
		t.Errorf("Count 0 fault: %d, want 500", got)
	}
	if got := v.fo(http.MethodGet, "/api/connector/dequeue/"+actExport, nil).StatusCode; got != 500 {
		t.Errorf("Count 0 fault, second time: %d, want 500 (forever)", got)
	}
	v.e.ClearFaults()
	if got := v.fo(http.MethodGet, "/api/connector/dequeue/"+actExport, nil).StatusCode; got != 204 {
		t.Errorf("after ClearFaults: %d", got)
	}
	// Explicit names reach the other listeners.
	v.e.Inject(d365test.Fault{Endpoint: "token", Count: 1, Status: 503})
	r := v.postForm(v.e.AuthorityURL()+"/oauth2/v2.0/token", url.Values{"grant_type": {"client_credentials"}})
	if r.StatusCode != 503 {
		t.Errorf("token fault: %d", r.StatusCode)
	}
	if got := v.e.TotalRequests(); got != 6 {
		t.Errorf("TotalRequests = %d, want 6 (F&O only)", got)
	}
}

func TestTransientFaultsHaveNoSideEffect(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		endpoint string
		status   int
	}{{"dequeue", 500}, {"dequeue", 502}, {"ack", 500}, {"ack", 502}, {"download", 500}, {"download", 502}} {
		t.Run(tc.endpoint+"/"+http.StatusText(tc.status), func(t *testing.T) {
			t.Parallel()
			v := setup(t, d365test.Options{})
			corr := v.e.QueueExport(actExport, d365test.Export{Body: []byte("zip")})
			v.e.Inject(d365test.Fault{Endpoint: tc.endpoint, Count: 1, Status: tc.status})
			if tc.endpoint == "dequeue" {
				if got := v.fo(http.MethodGet, "/api/connector/dequeue/"+actExport, nil).StatusCode; got != tc.status {
					t.Fatalf("%d", got)
				}
			}
			d, raw := v.dequeue(actExport)
			if d == nil || d["LastDequeueDateTime"] != nil {
				t.Fatalf("after a faulted dequeue the message must still be fresh: %s", raw)
			}
			loc := d["DownloadLocation"].(string)
			if tc.endpoint == "download" {
				r := v.do(context.Background(), http.MethodGet, loc, nil, v.bearer()...)
				if r.StatusCode != tc.status {
					t.Fatalf("download %d", r.StatusCode)
				}
			}
			if r := v.do(context.Background(), http.MethodGet, loc, nil, v.bearer()...); r.StatusCode != 200 || string(r.body) != "zip" {
				t.Fatalf("download %d %q", r.StatusCode, r.body)
			}
			if tc.endpoint == "ack" {
				if got := v.ack(actExport, raw); got != tc.status {
					t.Fatalf("ack %d", got)
				}
				if len(v.e.Acked(actExport)) != 0 {
					t.Fatal("a faulted ack was recorded")
				}
			}
			if got := v.ack(actExport, raw); got != 200 {
				t.Fatalf("ack %d", got)
			}
			if got := v.e.Acked(actExport); len(got) != 1 || got[0] != corr {
				t.Errorf("Acked %v", got)
			}
		})
	}
}

func TestDropAck(t *testing.T) {
	t.Parallel()
	v := setup(t, d365test.Options{})
	corr := v.e.QueueExport(actExport, d365test.Export{Body: []byte("zip")})
	v.e.Inject(d365test.Fault{Endpoint: "ack", Count: 1, DropAck: true})
	_, raw := v.dequeue(actExport)
	if got := v.ack(actExport, raw); got != 200 {
		t.Fatalf("ack %d, want 200", got)
	}
	if len(v.e.Acked(actExport)) != 0 || v.e.Pending(actExport) != 1 {
		t.Fatal("a dropped ack was recorded")
	}
	v.e.Advance(30 * time.Minute)
	d, _ := v.dequeue(actExport)
	if d == nil || d["CorrelationId"] != corr || d["LastDequeueDateTime"] == nil {
		t.Fatalf("not re-delivered after a lost ack: %v", d)
	}
}

func TestDequeueFaults(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		fault d365test.Fault
		check func(t *testing.T, v *env, d map[string]any)
	}{
		{"null DownloadLocation", d365test.Fault{NullDownloadLocation: true}, func(t *testing.T, v *env, d map[string]any) {
			if loc, present := d["DownloadLocation"]; !present || loc != nil {
				t.Errorf("DownloadLocation = %v (present %v), want null", loc, present)
			}
		}},
		{"file missing", d365test.Fault{FileMissing: true}, func(t *testing.T, v *env, d map[string]any) {
			if d["IsDownLoadFileExist"] != false || d["FileDownLoadErrorMessage"] == nil || d["FileDownLoadErrorMessage"] == "" {
				t.Errorf("answer %v", d)
			}
		}},
		{"foreign host", d365test.Fault{ForeignDownloadHost: true}, func(t *testing.T, v *env, d map[string]any) {
			u, err := url.Parse(d["DownloadLocation"].(string))
			base, _ := url.Parse(v.e.URL())
			if err != nil || u.Hostname() != "localhost" || u.Port() == base.Port() || u.Scheme != "https" {
				t.Fatalf("DownloadLocation %v", d["DownloadLocation"])
			}
			r := v.do(context.Background(), http.MethodGet, u.String(), nil)
			if r.StatusCode != 200 || string(r.body) != "zip" || v.e.ForeignHostSawToken() {
				t.Fatalf("foreign GET without token: %d %q saw=%v", r.StatusCode, r.body, v.e.ForeignHostSawToken())
			}
			v.do(context.Background(), http.MethodGet, u.String(), nil, v.bearer()...)
			if !v.e.ForeignHostSawToken() {
				t.Error("the foreign host did not record the token")
			}
			if v.e.Requests("foreign-download") != 2 || v.e.Requests("download") != 0 {
				t.Errorf("foreign-download %d, download %d", v.e.Requests("foreign-download"), v.e.Requests("download"))
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			v := setup(t, d365test.Options{})
			v.e.QueueExport(actExport, d365test.Export{Body: []byte("zip")})
			f := tc.fault
			f.Endpoint, f.Count = "dequeue", 1
			v.e.Inject(f)
			d, raw := v.dequeue(actExport)
			if d == nil || d["PopReceipt"] == "" {
				t.Fatalf("answer %s", raw)
			}
			tc.check(t, v, d)
			if got := v.ack(actExport, raw); got != 200 {
				t.Errorf("ack of a faulted dequeue: %d", got)
			}
		})
	}
}

func TestResetAfterBytes(t *testing.T) {
	t.Parallel()
	t.Run("enqueue", func(t *testing.T) {
		t.Parallel()
		v := setup(t, d365test.Options{})
		v.e.Inject(d365test.Fault{Endpoint: "enqueue", Count: 1, ResetAfterBytes: 1000})
		body := bytes.Repeat([]byte("a"), 4<<20)
		_, err := v.try(context.Background(), http.MethodPost, v.e.URL()+"/api/connector/enqueue/"+actImport,
			bytes.NewReader(body), v.bearer()...)
		if err == nil {
			t.Fatal("the client saw no error")
		}
		if n := len(v.e.Messages()); n != 0 {
			t.Fatalf("a reset enqueue stored %d messages", n)
		}
	})
	t.Run("download", func(t *testing.T) {
		t.Parallel()
		v := setup(t, d365test.Options{})
		v.e.QueueExport(actExport, d365test.Export{Body: bytes.Repeat([]byte("z"), 100000)})
		d, _ := v.dequeue(actExport)
		v.e.Inject(d365test.Fault{Endpoint: "download", Count: 1, ResetAfterBytes: 1234})
		r, err := v.try(context.Background(), http.MethodGet, d["DownloadLocation"].(string), nil, v.bearer()...)
		if !errors.Is(err, io.ErrUnexpectedEOF) || len(r.body) != 1234 || r.ContentLength != 100000 {
			t.Fatalf("err %v, %d bytes, Content-Length %d", err, len(r.body), r.ContentLength)
		}
	})
}

func TestDelay(t *testing.T) {
	t.Parallel()
	t.Run("side effects happen, answer is late", func(t *testing.T) {
		t.Parallel()
		v := setup(t, d365test.Options{})
		v.e.Inject(d365test.Fault{Endpoint: "enqueue", Count: 1, Delay: time.Hour})
		err := v.abandon(func() bool { return len(v.e.Messages()) == 1 },
			http.MethodPost, "/api/connector/enqueue/"+actImport, "a")
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err %v, want the client's cancel", err)
		}
		if n := len(v.e.Messages()); n != 1 {
			t.Fatalf("%d messages, want 1: a slow answer still enqueues", n)
		}
	})
	t.Run("with a status nothing happens", func(t *testing.T) {
		t.Parallel()
		v := setup(t, d365test.Options{})
		v.e.Inject(d365test.Fault{Endpoint: "enqueue", Count: 1, Delay: time.Hour, Status: 500})
		err := v.abandon(func() bool { return v.e.Requests("enqueue") == 1 },
			http.MethodPost, "/api/connector/enqueue/"+actImport, "a")
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err %v, want the client's cancel", err)
		}
		if n := len(v.e.Messages()); n != 0 {
			t.Fatalf("%d messages, want 0", n)
		}
	})
	t.Run("Close does not wait for a delayed answer", func(t *testing.T) {
		t.Parallel()
		e := d365test.New(d365test.Options{})
		e.Inject(d365test.Fault{Delay: time.Hour, Status: 500})
		tok := (&env{t: t, e: e, hc: e.HTTPClient()}).tokenFor(e.ClientID(), e.ClientSecret())
		errc := make(chan error, 1)
		go func() {
			req, _ := http.NewRequest(http.MethodGet, e.URL()+"/api/connector/dequeue/"+actExport, nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			resp, err := e.HTTPClient().Do(req)
			if err == nil {
				resp.Body.Close()
			}
			errc <- err
		}()
		for e.Requests("dequeue") == 0 {
			time.Sleep(time.Millisecond)
		}
		e.Close() // the test times out if Close waits an hour
		if err := <-errc; err == nil {
			t.Error("the delayed request succeeded")
		}
	})
}

// abandon sends an F&O request, waits until cond holds (the emulator has
// reached the point of interest), then cancels it, like a client timing out.
// No wall-clock timeout is involved, so it holds on a slow machine.
func (v *env) abandon(cond func() bool, method, path, body string) error {
	v.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		_, err := v.try(ctx, method, v.e.URL()+path, strings.NewReader(body), v.bearer()...)
		errc <- err
	}()
	for !cond() {
		select {
		case err := <-errc:
			return fmt.Errorf("answered before the condition held: %v", err)
		case <-time.After(time.Millisecond):
		}
	}
	cancel()
	return <-errc
}
