package filing_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/fno-bridge/s3-fno/internal/imports/filing"
	"github.com/fno-bridge/s3-fno/internal/imports/filing/filingtest"
	"github.com/fno-bridge/s3-fno/internal/local/s3fake"
	"github.com/fno-bridge/s3-fno/internal/shared/layout"
)

// TestMalformedKeyFromAnyMessageID: the SQS message ID is outside input
// that becomes part of a key. Whatever it is, the body is kept under
// rejected/_malformed/<date>/<safe name>.event, the reason document names
// exactly that key and the ID as sent, and two IDs never share a key.
func TestMalformedKeyFromAnyMessageID(t *testing.T) {
	lay := layout.Default()
	when := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	prefix := "rejected/_malformed/2026/03/01/"
	long := strings.Repeat("x", 300)
	tests := []struct {
		id, want string // want: the exact name, or "" for any safe name
	}{
		{"0f8fad5b-d9cb-469f-a165-70867728950e", "0f8fad5b-d9cb-469f-a165-70867728950e"},
		{"msg_1.v2", "msg_1.v2"},
		{"\xac", ""},
		{"a\x00b", ""},
		{"a\nb", ""},
		{"../../_state/markers/x", ""},
		{"a/b", ""},
		{`a\b`, ""},
		{"a b", ""},
		{"Künde", ""},
		{"..", ""},
		{".", ""},
		{"\u202e", ""},
		{long, ""},
		{"", ""},
	}
	s3c := s3fake.New()
	seen := map[string]string{}
	for _, tt := range tests {
		m := events.SQSMessage{MessageId: tt.id, Body: "body of " + strconv.Quote(tt.id)}
		before := len(s3c.Keys())
		if err := filing.KeepMalformed(context.Background(), s3c, lay, "b", func() time.Time { return when }, slog.New(slog.DiscardHandler),
			m, errors.New("not a notification")); err != nil {
			t.Fatalf("%q: %v", tt.id, err)
		}
		name := filing.MalformedName(tt.id, m.Body)
		key := prefix + name + ".event"
		filingtest.CheckMalformedKey(t, key, tt.id)
		if tt.want != "" && name != tt.want {
			t.Errorf("%q kept as %q, want %q", tt.id, name, tt.want)
		}
		if other, dup := seen[key]; dup {
			t.Fatalf("%q and %q share %s", tt.id, other, key)
		}
		seen[key] = tt.id
		if n := len(s3c.Keys()) - before; n != 2 {
			t.Fatalf("%q: %d objects written, want the body and its reason (%v)", tt.id, n, s3c.Keys())
		}
		o, ok := s3c.Get("b", key)
		if !ok || string(o.Body) != m.Body {
			t.Fatalf("%q: %s not kept (have %v)", tt.id, key, s3c.Keys())
		}
		r, ok := s3c.Get("b", key+layout.ReasonSuffix)
		if !ok {
			t.Fatalf("%q: no reason document", tt.id)
		}
		var doc filing.Reason
		if err := json.Unmarshal(r.Body, &doc); err != nil {
			t.Fatal(err)
		}
		id := doc.MessageID
		if uq, err := strconv.Unquote(id); err == nil && strings.HasPrefix(id, `"`) {
			id = uq
		}
		if doc.RejectedKey != key || doc.Reason != "malformed-event" || doc.Detail != "not a notification" || id != tt.id {
			t.Errorf("%q: reason %+v", tt.id, doc)
		}
	}
}
