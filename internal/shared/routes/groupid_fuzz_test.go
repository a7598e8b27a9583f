package routes_test

import (
	"strings"
	"testing"
	"unicode"

	"github.com/fno-bridge/s3-fno/internal/shared/layout"
	"github.com/fno-bridge/s3-fno/internal/shared/routes"
	"github.com/fno-bridge/s3-fno/pkg/d365"
)

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
	switch r.Kind {
	case routes.KindFile, routes.KindPackage:
		if _, err := d365.ActivityID(r.ActivityID); err != nil {
			t.Fatalf("accepted activityId %q that the F&O client refuses: %v", r.ActivityID, err)
		}
	case routes.KindDataProject:
		if r.ActivityID != "" || r.Entity != "" || r.Company != "" || r.DefinitionGroupID == "" || r.LegalEntityID == "" ||
			strings.IndexFunc(r.DefinitionGroupID+r.LegalEntityID, unicode.IsControl) >= 0 {
			t.Fatalf("accepted dataProject route %+v", r)
		}
	default:
		t.Fatalf("kind %q", r.Kind)
	}
	if strings.IndexFunc(r.Entity+r.Company, unicode.IsControl) >= 0 {
		t.Fatalf("entity/company %q/%q hold control characters", r.Entity, r.Company)
	}
	l := layout.Default()
	if rt, file, ok := l.Split(l.InboundKey(r.Name, "x.csv")); !ok || rt != r.Name || file != "x.csv" {
		t.Fatalf("route %q does not survive InboundKey/Split: %q %q", r.Name, rt, file)
	}
}
