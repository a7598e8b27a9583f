package routes_test

import (
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/fno-bridge/s3-fno/internal/shared/routes"
	"github.com/fno-bridge/s3-fno/pkg/d365"
)

// FuzzLayoutFromEnv: the prefix variables. An accepted layout has five
// separate, usable prefixes, and every key built from it stays under the
// prefix it belongs to.
func FuzzLayoutFromEnv(f *testing.F) {
	for _, s := range [][5]string{
		{"", "", "", "", ""},
		{"in", "done/", "err/", "rej/", ".state/"},
		{" in/ ", "", "", "", ""},
		{"inbound/", "inbound/processed/", "", "", ""},
		{"/abs/", "", "", "", ""},
		{"a//b/", "", "", "", ""},
		{"../up/", "./here/", "", "", ""},
		{"a/../b/", "", "", "", ""},
		{"in\x00/", "", "", "", ""},
		{"in\u0085/", "", "", "", ""},
		{"ü/€/", "", "", "", ""},
		{"/", "", "", "", ""},
		{"inbound", "inbound2", "", "", ""},
		{"x/", "x/", "", "", ""},
	} {
		f.Add(s[0], s[1], s[2], s[3], s[4])
	}
	f.Fuzz(func(t *testing.T, in, proc, failed, rej, state string) {
		env := map[string]string{"INBOUND_PREFIX": in, "PROCESSED_PREFIX": proc, "FAILED_PREFIX": failed,
			"REJECTED_PREFIX": rej, "STATE_PREFIX": state}
		l, err := routes.LayoutFromEnv(func(k string) string { return env[k] })
		if err != nil {
			if !strings.Contains(err.Error(), "_PREFIX") {
				t.Fatalf("error does not name the variable: %v", err)
			}
			return
		}
		ps := []string{l.Inbound, l.Processed, l.Failed, l.Rejected, l.State}
		for i, p := range ps {
			if !strings.HasSuffix(p, "/") || strings.HasPrefix(p, "/") || strings.Contains(p, "//") ||
				strings.IndexFunc(p, unicode.IsControl) >= 0 {
				t.Fatalf("accepted prefix %q", p)
			}
			for _, seg := range strings.Split(strings.TrimSuffix(p, "/"), "/") {
				if seg == "." || seg == ".." {
					t.Fatalf("accepted prefix %q with a %q segment", p, seg)
				}
			}
			for j, q := range ps {
				if i != j && strings.HasPrefix(p, q) {
					t.Fatalf("prefixes %q and %q overlap", p, q)
				}
			}
		}
		when := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
		route, file := "customers", "sub/red flower+%2F.csv"
		for _, k := range []struct{ key, prefix string }{
			{l.InboundKey(route, file), l.Inbound},
			{l.ProcessedKey(route, when, file), l.Processed},
			{l.FailedKey(route, when, file), l.Failed},
			{l.RejectedKey(route, when, file), l.Rejected},
			{l.RejectedKey("", when, file), l.Rejected + routes.Unrouted + "/"},
			{l.MarkerKey("abc"), l.State}, {l.RoutedKey("abc"), l.State}, {l.SweepStateKey(), l.State},
			{l.PollerLeaseKey(), l.State},
			{l.LedgerPrefix(), l.State},
		} {
			if !strings.HasPrefix(k.key, k.prefix) {
				t.Fatalf("key %q is not under %q", k.key, k.prefix)
			}
		}
		if r, fl, ok := l.Split(l.InboundKey(route, file)); !ok || r != route || fl != file {
			t.Fatalf("Split(InboundKey) = %q %q %v", r, fl, ok)
		}
	})
}

// FuzzLayoutSplit: any key S3 reports. Split says whether it is under
// inbound/, and a route and file put back together give the key again.
func FuzzLayoutSplit(f *testing.F) {
	for _, s := range []string{"inbound/customers/a.csv", "inbound/a.csv", "inbound/", "inbound//x", "inbound/c/", "inbound/c/d/e.csv",
		"processed/c/x", "inbound", "INBOUND/c/x", "inbound/../_state/x", "inbound/c/\x00", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		l := routes.DefaultLayout()
		route, file, ok := l.Split(key)
		if ok != strings.HasPrefix(key, l.Inbound) {
			t.Fatalf("Split(%q) ok = %v", key, ok)
		}
		if !ok {
			return
		}
		if strings.Contains(route, "/") {
			t.Fatalf("route %q holds a '/'", route)
		}
		back := l.Inbound + file
		if route != "" || strings.Contains(strings.TrimPrefix(key, l.Inbound), "/") {
			back = l.InboundKey(route, file)
		}
		if back != key {
			t.Fatalf("Split(%q) = %q, %q: puts back as %q", key, route, file, back)
		}
	})
}

// FuzzSanitizeGroupID: every entity name becomes a MessageGroupId SQS
// accepts, the same one each time, and two different names do not share one.
func FuzzSanitizeGroupID(f *testing.F) {
	for _, s := range []string{"Customer groups", "CustCustomerGroupEntity", "", " ", "ü", "a\x00b", strings.Repeat("x", 128), strings.Repeat("x", 129),
		strings.Repeat("é", 100), "route:pkg", "~", "\xff"} {
		f.Add(s, s+" ")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		ga, gb := routes.SanitizeGroupID(a), routes.SanitizeGroupID(b)
		for _, g := range []string{ga, gb} {
			if len(g) == 0 || len(g) > 128 {
				t.Fatalf("group %q: length %d", g, len(g))
			}
			for i := 0; i < len(g); i++ {
				if g[i] < 0x21 || g[i] > 0x7e {
					t.Fatalf("group %q holds byte %#x", g, g[i])
				}
			}
		}
		if routes.SanitizeGroupID(a) != ga {
			t.Fatal("not deterministic")
		}
		if a != b && ga == gb {
			t.Fatalf("%q and %q share group %q", a, b, ga)
		}
	})
}

// checkRoute is what every route Parse accepts must satisfy.
func checkRoute(t *testing.T, tb *routes.Table, r routes.Route) {
	t.Helper()
	if r.Name == "" || r.Name != strings.TrimSpace(r.Name) || strings.ContainsAny(r.Name, "/\\") || r.Name == "." || r.Name == ".." ||
		strings.HasPrefix(r.Name, "_") || strings.IndexFunc(r.Name, unicode.IsControl) >= 0 {
		t.Fatalf("accepted route name %q", r.Name)
	}
	if got, ok := tb.Lookup(r.Name); !ok || got != r {
		t.Fatalf("Lookup(%q) = %+v %v", r.Name, got, ok)
	}
	if _, err := d365.ActivityID(r.ActivityID); err != nil {
		t.Fatalf("accepted activityId %q that the F&O client refuses: %v", r.ActivityID, err)
	}
	if r.Kind != routes.KindFile && r.Kind != routes.KindPackage {
		t.Fatalf("kind %q", r.Kind)
	}
	if strings.IndexFunc(r.Entity+r.Company, unicode.IsControl) >= 0 {
		t.Fatalf("entity/company %q/%q hold control characters", r.Entity, r.Company)
	}
	l := routes.DefaultLayout()
	if rt, file, ok := l.Split(l.InboundKey(r.Name, "x.csv")); !ok || rt != r.Name || file != "x.csv" {
		t.Fatalf("route %q does not survive InboundKey/Split: %q %q", r.Name, rt, file)
	}
}
