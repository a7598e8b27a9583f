package layout_test

import (
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/fno-bridge/s3-fno/internal/shared/layout"
)

// FuzzFromEnv: the prefix variables. An accepted layout has five
// separate, usable prefixes, and every key built from it stays under the
// prefix it belongs to.
func FuzzFromEnv(f *testing.F) {
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
		l, err := layout.FromEnv(func(k string) string { return env[k] })
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
			{l.RejectedKey("", when, file), l.Rejected + layout.Unrouted + "/"},
			{l.MarkerKey("abc"), l.State}, {l.ReleasedKey(route, "abc"), l.State}, {l.SweepStateKey(), l.State},
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
		l := layout.Default()
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

func TestLayout(t *testing.T) {
	t.Parallel()
	l := layout.Default()
	day := time.Date(2026, 3, 7, 23, 59, 0, 0, time.FixedZone("x", -3600))
	for _, tt := range []struct{ got, want string }{
		{l.ProcessedKey("c", day, "a b.csv"), "processed/c/2026/03/08/a b.csv"},
		{l.FailedKey("c", day, "sub/x.csv"), "failed/c/2026/03/08/sub/x.csv"},
		{l.RejectedKey("", day, "x.csv"), "rejected/_unrouted/2026/03/08/x.csv"},
		{l.MarkerKey("ab"), "_state/markers/ab.json"},
		{l.LedgerPrefix(), "_state/ledger/"},
	} {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
	for _, tt := range []struct {
		key, route, file string
		ok               bool
	}{
		{"inbound/c/x.csv", "c", "x.csv", true},
		{"inbound/c/sub/x.csv", "c", "sub/x.csv", true},
		{"inbound/x.csv", "", "x.csv", true},
		{"processed/c/x.csv", "", "", false},
	} {
		r, f, ok := l.Split(tt.key)
		if r != tt.route || f != tt.file || ok != tt.ok {
			t.Errorf("Split(%q) = %q,%q,%v", tt.key, r, f, ok)
		}
	}
}

// TestWhereKey: the where-index folder of a name holds only that name's
// pointers, and every key fits in S3's 1,024 bytes, however long the name.
func TestWhereKey(t *testing.T) {
	l := layout.Default()
	id := strings.Repeat("a", 64)
	if got, want := l.WhereKey("a.csv", id), "_state/where/a.csv/"+id+".json"; got != want {
		t.Errorf("WhereKey = %q, want %q", got, want)
	}
	if !strings.HasPrefix(l.WhereFolder("a.csv"), l.WhereRoot()) || !strings.HasPrefix(l.WhereRoot(), l.State) {
		t.Errorf("the where-index is not under %s", l.State)
	}
	long1, long2 := strings.Repeat("é", 600)+"1.csv", strings.Repeat("é", 600)+"2.csv"
	k1, k2 := l.WhereKey(long1, id), l.WhereKey(long2, id)
	if k1 == k2 {
		t.Errorf("two long names share %q", k1)
	}
	for _, k := range []string{k1, k2} {
		if len(k) > 1024 || !utf8.ValidString(k) {
			t.Errorf("key of %d bytes (valid UTF-8: %v)", len(k), utf8.ValidString(k))
		}
	}
	if l.WhereFolder(long1) != l.WhereFolder(long1) || strings.HasPrefix(l.WhereFolder("a.csvx"), l.WhereFolder("a.csv")) {
		t.Error("folders are not one per name")
	}
}
