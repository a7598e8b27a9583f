package routes_test

import (
	"strings"
	"testing"
	"time"

	"github.com/fno-bridge/s3-fno/internal/shared/routes"
)

// TestOrderAndSettle: a route's ordering rule and settle window, their
// defaults, and refusals that name the field.
func TestOrderAndSettle(t *testing.T) {
	t.Parallel()
	const act = "5d3c1e0a-7b64-4e7a-9b2f-8f6b3a521c0d"
	route := func(extra string) string {
		return `[{"route":"j","activityId":"` + act + `","entity":"Journal"` + extra + `}]`
	}
	for _, tt := range []struct {
		extra   string
		order   routes.Order
		settle  time.Duration
		wantErr string
	}{
		{"", routes.OrderTime, routes.DefaultSettle, ""},
		{`,"order":"name"`, routes.OrderName, routes.DefaultSettle, ""},
		{`,"order":"TIME","settle":"30s"`, routes.OrderTime, 30 * time.Second, ""},
		{`,"settle":"0s"`, routes.OrderTime, 0, ""},
		{`,"order":"size"`, "", 0, "order"},
		{`,"settle":"soon"`, "", 0, "settle"},
		{`,"settle":"-1s"`, "", 0, "settle"},
		{`,"settle":"11m"`, "", 0, "settle"},
		{`,"settle":5`, "", 0, "settle"},
	} {
		tb, err := routes.Parse(route(tt.extra))
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s: err = %v, want one naming %s", tt.extra, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", tt.extra, err)
		}
		r, _ := tb.Lookup("j")
		if r.Order != tt.order || r.Settle != tt.settle {
			t.Errorf("%s: order %q settle %s, want %q %s", tt.extra, r.Order, r.Settle, tt.order, tt.settle)
		}
	}
}
