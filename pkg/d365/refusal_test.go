package d365_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"sync"
	"testing"

	"github.com/fno-bridge/s3-fno/pkg/d365"
	"github.com/fno-bridge/s3-fno/pkg/d365/d365test"
)

// refusingTokens hands out the emulator's tokens and is told of the ones
// F&O refused; again is what it answers (a fresh token may be had).
type refusingTokens struct {
	d365.TokenSource
	again bool

	mu      sync.Mutex
	refused []string
}

func (r *refusingTokens) Refused(_ context.Context, tok string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.refused = append(r.refused, tok)
	return r.again
}

func (r *refusingTokens) told() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.refused...)
}

// refusingClient is a client of e whose token source is told of F&O's
// refusals and answers again.
func refusingClient(t *testing.T, e *d365test.Emulator, again bool) (*d365.Client, *refusingTokens) {
	t.Helper()
	cred, err := d365.SecretCredential(e.ClientSecret())
	if err != nil {
		t.Fatal(err)
	}
	cfg := clientConfig(e, cred)
	src, err := d365.NewTokenSource(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tokens := &refusingTokens{TokenSource: src, again: again}
	cfg.Tokens = tokens
	c, err := d365.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c, tokens
}

// TestRefusedTokenIsToldAndTheRequestSentOnce: F&O's 401 to a token is
// told to a token source that can take it (a d365.TokenRefuser), and when
// it says a fresh token may be had, the request goes once more, an
// enqueue too (its body reopened: F&O did not act on a request it
// refused). A source that says no, or a second 401, leaves the 401 as the
// answer.
func TestRefusedTokenIsToldAndTheRequestSentOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	t.Run("status request", func(t *testing.T) {
		t.Parallel()
		e := newEmulator(t, d365test.Options{})
		c, tokens := refusingClient(t, e, true)
		e.Inject(d365test.Fault{Endpoint: "GetMessageStatus", Count: 1, Status: http.StatusUnauthorized})
		if _, err := c.GetMessageStatus(ctx, "{00000000-0000-0000-0000-000000000000}"); err != nil {
			t.Fatalf("err = %v, want the second send's answer", err)
		}
		if got := tokens.told(); len(got) != 1 || got[0] == "" || e.Requests("GetMessageStatus") != 2 {
			t.Fatalf("told of %d refused tokens, %d requests; want 1 and 2", len(got), e.Requests("GetMessageStatus"))
		}
	})
	t.Run("enqueue, body reopened", func(t *testing.T) {
		t.Parallel()
		e := newEmulator(t, d365test.Options{})
		c, tokens := refusingClient(t, e, true)
		e.Inject(d365test.Fault{Endpoint: "enqueue", Count: 1, Status: http.StatusUnauthorized})
		body := bytes.Repeat([]byte("CUSTGROUP,Name\r\n10,Wholesale\r\n"), 100)
		if _, err := c.Enqueue(ctx, d365.EnqueueRequest{ActivityID: importActivity, Body: bytes.NewReader(body), Size: int64(len(body)),
			Reopen: func(context.Context) (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }}); err != nil {
			t.Fatalf("err = %v", err)
		}
		msgs := e.Messages()
		if len(tokens.told()) != 1 || e.Requests("enqueue") != 2 || len(msgs) != 1 || msgs[0].Size != int64(len(body)) {
			t.Fatalf("told %d, %d requests, F&O holds %+v: want 1, 2, the whole file once", len(tokens.told()), e.Requests("enqueue"), msgs)
		}
	})
	t.Run("no fresh token", func(t *testing.T) {
		t.Parallel()
		e := newEmulator(t, d365test.Options{})
		c, tokens := refusingClient(t, e, false)
		e.Inject(d365test.Fault{Endpoint: "GetMessageStatus", Count: 1, Status: http.StatusUnauthorized})
		_, err := c.GetMessageStatus(ctx, "{00000000-0000-0000-0000-000000000000}")
		var fe *d365.Error
		if !errors.As(err, &fe) || fe.StatusCode != http.StatusUnauthorized || len(tokens.told()) != 1 || e.Requests("GetMessageStatus") != 1 {
			t.Fatalf("err = %v, told %d, %d requests: want the 401, 1, 1", err, len(tokens.told()), e.Requests("GetMessageStatus"))
		}
	})
	t.Run("refused again", func(t *testing.T) {
		t.Parallel()
		e := newEmulator(t, d365test.Options{})
		c, tokens := refusingClient(t, e, true)
		e.Inject(d365test.Fault{Endpoint: "GetMessageStatus", Count: 2, Status: http.StatusUnauthorized})
		_, err := c.GetMessageStatus(ctx, "{00000000-0000-0000-0000-000000000000}")
		var fe *d365.Error
		if !errors.As(err, &fe) || fe.StatusCode != http.StatusUnauthorized || e.Requests("GetMessageStatus") != 2 {
			t.Fatalf("err = %v, %d requests (told %d): want the second 401, 2", err, e.Requests("GetMessageStatus"), len(tokens.told()))
		}
	})
}
