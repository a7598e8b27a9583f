package routes_test

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/fno-bridge/s3-fno/internal/shared/layout"
	"github.com/fno-bridge/s3-fno/internal/shared/routes"
)

const guid = "5d3c1e0a-7b64-4e7a-9b2f-8f6b3a521c0d"

func TestParse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		wantErr []string // substrings the error must hold; nil: success
		check   func(t *testing.T, tb *routes.Table)
	}{
		{name: "OK", in: `[{"route":"customers","activityId":"` + guid + `","entity":"Customer groups","company":"USMF","kind":"file"},
			{"route":"pkg","activityId":"{` + strings.ToUpper(guid) + `}","kind":"package"}]`,
			check: func(t *testing.T, tb *routes.Table) {
				r, ok := tb.Lookup("customers")
				if !ok || r.Entity != "Customer groups" || r.Company != "USMF" || r.Kind != routes.KindFile || r.ActivityID != guid {
					t.Errorf("customers = %+v, %v", r, ok)
				}
				p, ok := tb.Lookup("pkg")
				if !ok || p.Kind != routes.KindPackage || p.Entity != "" {
					t.Errorf("pkg = %+v, %v", p, ok)
				}
				if tb.Len() != 2 || tb.All()[0].Name != "customers" {
					t.Errorf("All = %+v", tb.All())
				}
				if _, ok := tb.Lookup("other"); ok {
					t.Error("Lookup(other) found a route")
				}
			}},
		{name: "kind defaults to file", in: `[{"route":"a","activityId":"` + guid + `","entity":"E"}]`,
			check: func(t *testing.T, tb *routes.Table) {
				if r, _ := tb.Lookup("a"); r.Kind != routes.KindFile {
					t.Errorf("kind = %q", r.Kind)
				}
			}},
		{name: "kind any case", in: `[{"route":"a","activityId":"` + guid + `","kind":"Package"}]`,
			check: func(t *testing.T, tb *routes.Table) {
				if r, _ := tb.Lookup("a"); r.Kind != routes.KindPackage {
					t.Errorf("kind = %q", r.Kind)
				}
			}},
		{name: "empty", in: ``, wantErr: []string{"ROUTES is required"}},
		{name: "not JSON", in: `{`, wantErr: []string{"ROUTES", "not a JSON array"}},
		{name: "object not array", in: `{"route":"a"}`, wantErr: []string{"ROUTES", "not a JSON array"}},
		{name: "empty array", in: `[]`, wantErr: []string{"ROUTES", "at least one route"}},
		{name: "missing route", in: `[{"activityId":"` + guid + `","entity":"E"}]`, wantErr: []string{"ROUTES[0]", "route: is required"}},
		{name: "slash in route", in: `[{"route":"a/b","activityId":"` + guid + `","entity":"E"}]`, wantErr: []string{"ROUTES[0]", `"a/b"`, "single folder"}},
		{name: "reserved route", in: `[{"route":"_unrouted","activityId":"` + guid + `","entity":"E"}]`, wantErr: []string{"ROUTES[0]", "reserved"}},
		{name: "missing activity", in: `[{"route":"ok","activityId":"` + guid + `","entity":"E"},{"route":"b","entity":"E"}]`,
			wantErr: []string{`ROUTES[1] ("b")`, "activityId: is required"}},
		{name: "bad activity", in: `[{"route":"b","activityId":"nope","entity":"E"}]`, wantErr: []string{`ROUTES[0] ("b")`, "activityId", "not a GUID"}},
		{name: "file needs entity", in: `[{"route":"b","activityId":"` + guid + `"}]`, wantErr: []string{`ROUTES[0] ("b")`, "entity: is required"}},
		{name: "bad kind", in: `[{"route":"b","activityId":"` + guid + `","entity":"E","kind":"zip"}]`, wantErr: []string{`("b")`, "kind", `"zip"`}},
		{name: "unknown field", in: `[{"route":"b","activityID":"` + guid + `","entity":"E"}]`, wantErr: []string{`ROUTES[0] ("b")`, "activityID"}},
		{name: "wrong type", in: `[{"route":"b","activityId":7}]`, wantErr: []string{`ROUTES[0] ("b")`}},
		{name: "duplicate", in: `[{"route":"b","activityId":"` + guid + `","entity":"E"},{"route":"b","activityId":"` + guid + `","entity":"F"}]`,
			wantErr: []string{`ROUTES[1] ("b")`, "twice"}},
		{name: "control char", in: `[{"route":"b\u0001","activityId":"` + guid + `","entity":"E"}]`, wantErr: []string{"ROUTES[0]", "control"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tb, err := routes.Parse(tt.in)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				tt.check(t, tb)
				return
			}
			if err == nil {
				t.Fatalf("Parse succeeded, want an error holding %q", tt.wantErr)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not hold %q", err, w)
				}
			}
		})
	}
}

func FuzzParseRoutes(f *testing.F) {
	for _, s := range []string{
		``, `[]`, `{}`, `null`, `[null]`, `[{}]`, `[1]`,
		`[{"route":"customers","activityId":"` + guid + `","entity":"Customer groups","company":"USMF","kind":"file"}]`,
		`[{"route":"p","activityId":"{` + guid + `}","kind":"package"}]`,
		`[{"route":"a","activityId":"` + guid + `","entity":"E"},{"route":"a","activityId":"` + guid + `","entity":"E"}]`,
		`[{"route":"ü/","activityId":"x"}]`,
		`[{"route":"customers","activityID":"` + guid + `","entity":"E"}]`,
		`[{"route":"customers","activityId":"` + guid + `","entity":"E","route":"other"}]`,
		`[{"route":" .. ","activityId":"` + guid + `","entity":"E"}]`,
		`[{"route":"_state","activityId":"` + guid + `","entity":"E"}]`,
		`[{"route":"c\u0000","activityId":"` + guid + `","entity":"E"}]`,
		`[{"route":"c\u0085","activityId":"` + guid + `","entity":"E\u2028"}]`,
		`[{"route":"c","activityId":"%7B` + guid + `%7D","entity":"E"}]`,
		`[{"route":"c","activityId":"{` + guid + `","entity":"E"}]`,
		`[{"route":"c","activityId":"` + guid + `","entity":"E","kind":"PACKAGE"}]`,
		`[{"route":"c","activityId":"` + guid + `","entity":null,"kind":"file"}]`,
		`[{"route":"c","activityId":"` + guid + `","entity":["E"]}]`,
		`[{"route":"o","kind":"dataProject","definitionGroupId":"Opening","legalEntityId":"USMF","execute":false}]`,
		`[{"route":"o","kind":"dataProject","definitionGroupId":"","legalEntityId":"USMF","entity":""}]`,
		`[{"route":"c","activityId":"` + guid + `","entity":"E"}] trailing`,
		`[` + strings.Repeat(`[`, 5000) + strings.Repeat(`]`, 5000) + `]`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tb, err := routes.Parse(s)
		if err != nil {
			if tb != nil {
				t.Fatal("a table and an error")
			}
			if !strings.Contains(err.Error(), "ROUTES") {
				t.Fatalf("error does not name ROUTES: %v", err)
			}
			return
		}
		if tb.Len() == 0 {
			t.Fatal("success with no routes")
		}
		for _, r := range tb.All() {
			checkRoute(t, tb, r)
			if r.Kind == routes.KindFile && r.Entity == "" {
				t.Fatalf("file route without entity: %+v", r)
			}
			g := r.GroupID()
			if g == "" || len(g) > 128 || !validGroup(g) {
				t.Fatalf("GroupID %q is not valid for SQS", g)
			}
		}
	})
}

func validGroup(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

func TestSanitizeGroupID(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 200)
	tests := []struct {
		in, want string
	}{
		{"CustCustomerGroupEntity", "CustCustomerGroupEntity"},
		{"Customer groups", "Customer_groups~"}, // changed: hash suffix
		{"", "_~"},                              // not the entity "_"
		{"a!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~z", "a!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~z"},
		{"Kunden-Gruppen ü", "Kunden-Gruppen__~"},
		{long, strings.Repeat("x", 115) + "~"},
	}
	for _, tt := range tests {
		got := routes.SanitizeGroupID(tt.in)
		if !strings.HasPrefix(got, tt.want) || len(got) > 128 || !validGroup(got) {
			t.Errorf("SanitizeGroupID(%q) = %q, want prefix %q, ≤128 SQS characters", tt.in, got, tt.want)
		}
		if strings.HasSuffix(tt.want, "~") && len(got) != len(tt.want)+12 {
			t.Errorf("SanitizeGroupID(%q) = %q: want a 12-digit hash suffix", tt.in, got)
		}
		if again := routes.SanitizeGroupID(tt.in); again != got {
			t.Errorf("not deterministic: %q then %q", got, again)
		}
	}
	if routes.SanitizeGroupID("Customer groups") == routes.SanitizeGroupID("Customer_groups") {
		t.Error(`"Customer groups" and "Customer_groups" share a group`)
	}
	if !utf8.ValidString(routes.SanitizeGroupID("ü")) {
		t.Error("invalid UTF-8")
	}
	if g := (routes.Route{Name: "pkgs", Kind: routes.KindPackage}).GroupID(); g != "route:pkgs" {
		t.Errorf("package group without entity = %q", g)
	}
}

func TestFromEnv(t *testing.T) {
	t.Parallel()
	good := `[{"route":"c","activityId":"` + guid + `","entity":"E"}]`
	tests := []struct {
		name    string
		env     map[string]string
		wantErr string
		check   func(t *testing.T, c routes.Config)
	}{
		{name: "defaults", env: map[string]string{"BUCKET": "b", "ROUTES": good}, check: func(t *testing.T, c routes.Config) {
			if c.Layout != layout.Default() || c.Bucket != "b" || c.Routes.Len() != 1 {
				t.Errorf("config = %+v", c)
			}
		}},
		{name: "prefixes", env: map[string]string{"BUCKET": "b", "ROUTES": good, "INBOUND_PREFIX": "in", "STATE_PREFIX": "sys/state/"},
			check: func(t *testing.T, c routes.Config) {
				if c.Layout.Inbound != "in/" || c.Layout.State != "sys/state/" || c.Layout.Processed != "processed/" {
					t.Errorf("layout = %+v", c.Layout)
				}
			}},
		{name: "config refresh", env: map[string]string{"BUCKET": "b", "CONFIG_REFRESH": "2s"}, check: func(t *testing.T, c routes.Config) {
			if c.ConfigRefresh != 2*time.Second || c.Routes != nil || c.ConfigKey != layout.DefaultConfigKey {
				t.Errorf("config = %+v", c)
			}
		}},
		{name: "config refresh too short", env: map[string]string{"BUCKET": "b", "CONFIG_REFRESH": "100ms"}, wantErr: "CONFIG_REFRESH"},
		{name: "config refresh not a duration", env: map[string]string{"BUCKET": "b", "CONFIG_REFRESH": "30"}, wantErr: "CONFIG_REFRESH"},
		{name: "no bucket", env: map[string]string{"ROUTES": good}, wantErr: "BUCKET"},
		{name: "bad routes", env: map[string]string{"BUCKET": "b", "ROUTES": "[]"}, wantErr: "ROUTES"},
		{name: "overlap", env: map[string]string{"BUCKET": "b", "ROUTES": good, "PROCESSED_PREFIX": "inbound/done/"}, wantErr: "PROCESSED_PREFIX"},
		{name: "absolute", env: map[string]string{"BUCKET": "b", "ROUTES": good, "FAILED_PREFIX": "/failed"}, wantErr: "FAILED_PREFIX"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := routes.FromEnv(func(k string) string { return tt.env[k] })
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one naming %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}
