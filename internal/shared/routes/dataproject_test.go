package routes_test

import (
	"strings"
	"testing"

	"github.com/fno-bridge/s3-fno/internal/shared/routes"
)

func TestParseDataProject(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		wantErr []string // substrings the error must hold; nil: success
		check   func(t *testing.T, r routes.Route)
	}{
		{name: "defaults", in: `{"route":"opening","kind":"dataProject","definitionGroupId":"Opening balances","legalEntityId":"USMF"}`,
			check: func(t *testing.T, r routes.Route) {
				if r.Kind != routes.KindDataProject || r.DefinitionGroupID != "Opening balances" || r.LegalEntityID != "USMF" ||
					!r.Execute || !r.Overwrite || r.ActivityID != "" || r.Order != routes.OrderTime || r.Settle != routes.DefaultSettle {
					t.Errorf("route = %+v", r)
				}
			}},
		{name: "flags, order, settle, any-case kind", in: `{"route":"o","kind":"DATAPROJECT","definitionGroupId":" P ","legalEntityId":"DAT",
			"execute":false,"overwrite":false,"order":"name","settle":"1m"}`,
			check: func(t *testing.T, r routes.Route) {
				if r.Kind != routes.KindDataProject || r.DefinitionGroupID != "P" || r.Execute || r.Overwrite || r.Order != routes.OrderName {
					t.Errorf("route = %+v", r)
				}
			}},
		{name: "no data project", in: `{"route":"o","kind":"dataProject","legalEntityId":"USMF"}`,
			wantErr: []string{`ROUTES[0] ("o")`, "definitionGroupId: is required"}},
		{name: "no legal entity", in: `{"route":"o","kind":"dataProject","definitionGroupId":"P"}`,
			wantErr: []string{`ROUTES[0] ("o")`, "legalEntityId: is required"}},
		{name: "activity on a data project", in: `{"route":"o","kind":"dataProject","activityId":"` + guid + `","definitionGroupId":"P","legalEntityId":"U"}`,
			wantErr: []string{`ROUTES[0] ("o")`, "activityId:", "package API"}},
		{name: "entity on a data project", in: `{"route":"o","kind":"dataProject","entity":"E","definitionGroupId":"P","legalEntityId":"U"}`,
			wantErr: []string{"entity:", "Manifest.xml"}},
		{name: "company on a data project", in: `{"route":"o","kind":"dataProject","company":"USMF","definitionGroupId":"P","legalEntityId":"U"}`,
			wantErr: []string{"company:", "legalEntityId"}},
		{name: "execute not a Boolean", in: `{"route":"o","kind":"dataProject","definitionGroupId":"P","legalEntityId":"U","execute":"yes"}`,
			wantErr: []string{`ROUTES[0] ("o")`, "execute/overwrite", "true or false"}},
		{name: "control characters", in: `{"route":"o","kind":"dataProject","definitionGroupId":"P\u0007","legalEntityId":"U"}`,
			wantErr: []string{"definitionGroupId/legalEntityId", "control"}},
		{name: "data project field on a file route", in: `{"route":"c","activityId":"` + guid + `","entity":"E","definitionGroupId":"P"}`,
			wantErr: []string{`ROUTES[0] ("c")`, "definitionGroupId: only a route of kind \"dataProject\""}},
		{name: "flag on a package route", in: `{"route":"p","activityId":"` + guid + `","kind":"package","overwrite":true}`,
			wantErr: []string{"overwrite: only a route of kind \"dataProject\""}},
		{name: "misspelt field", in: `{"route":"o","kind":"dataProject","definitionGroupID":"P","legalEntityId":"U"}`,
			wantErr: []string{`unknown field "definitionGroupID"`, "definitionGroupId"}},
		{name: "package template", in: `{"route":"o","kind":"dataProject","definitionGroupId":"P","legalEntityId":"U","packageTemplate":" customer-groups "}`,
			check: func(t *testing.T, r routes.Route) {
				if r.PackageTemplate != "customer-groups" {
					t.Errorf("PackageTemplate = %q", r.PackageTemplate)
				}
			}},
		{name: "empty package template", in: `{"route":"o","kind":"dataProject","definitionGroupId":"P","legalEntityId":"U","packageTemplate":""}`,
			wantErr: []string{`ROUTES[0] ("o")`, "packageTemplate: is empty", "_config/templates/"}},
		{name: "package template as a key", in: `{"route":"o","kind":"dataProject","definitionGroupId":"P","legalEntityId":"U","packageTemplate":"_config/templates/cg/"}`,
			wantErr: []string{"packageTemplate:", "the folder's name only"}},
		{name: "package template elsewhere", in: `{"route":"o","kind":"dataProject","definitionGroupId":"P","legalEntityId":"U","packageTemplate":"../config.json"}`,
			wantErr: []string{"packageTemplate:", "one folder"}},
		{name: "package template not a string", in: `{"route":"o","kind":"dataProject","definitionGroupId":"P","legalEntityId":"U","packageTemplate":3}`,
			wantErr: []string{`ROUTES[0] ("o")`, "packageTemplate"}},
		{name: "package template on a file route", in: `{"route":"c","activityId":"` + guid + `","entity":"E","packageTemplate":"cg"}`,
			wantErr: []string{"packageTemplate: only a route of kind \"dataProject\""}},
		{name: "unknown kind names the three", in: `{"route":"o","kind":"project","definitionGroupId":"P","legalEntityId":"U"}`,
			wantErr: []string{"kind:", `"dataProject"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tb, err := routes.Parse("[" + tt.in + "]")
			if tt.wantErr == nil {
				if err != nil {
					t.Fatal(err)
				}
				tt.check(t, tb.All()[0])
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

// TestImportScope: a dataProject route's imports share the environment's
// scope by default, their data project's with ScopeDataProject (in any
// case); its FIFO group is its data project either way.
func TestImportScope(t *testing.T) {
	t.Parallel()
	tb, err := routes.Parse(`[
		{"route":"a","kind":"dataProject","definitionGroupId":"Opening","legalEntityId":"USMF"},
		{"route":"b","kind":"dataProject","definitionGroupId":"OPENING","legalEntityId":"DAT"},
		{"route":"c","kind":"dataProject","definitionGroupId":"Budgets","legalEntityId":"USMF"},
		{"route":"f","activityId":"` + guid + `","entity":"E"}]`)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := tb.Lookup("a")
	b, _ := tb.Lookup("b")
	c, _ := tb.Lookup("c")
	f, _ := tb.Lookup("f")
	names := func(rs []routes.Route) string {
		var out []string
		for _, r := range rs {
			out = append(out, r.Name)
		}
		return strings.Join(out, ",")
	}
	if s := a.ImportScope(routes.ScopeEnvironment); s != "environment" || c.ImportScope(routes.ScopeEnvironment) != s {
		t.Errorf("environment scopes %q %q", s, c.ImportScope(routes.ScopeEnvironment))
	}
	if got := names(tb.InScope("environment", routes.ScopeEnvironment)); got != "a,b,c" {
		t.Errorf("environment scope holds %s", got)
	}
	if s := a.ImportScope(routes.ScopeDataProject); s != "dataProject:opening" || b.ImportScope(routes.ScopeDataProject) != s {
		t.Errorf("data project scopes %q %q", s, b.ImportScope(routes.ScopeDataProject))
	}
	if got := names(tb.InScope(a.ImportScope(routes.ScopeDataProject), routes.ScopeDataProject)); got != "a,b" {
		t.Errorf("data project scope holds %s", got)
	}
	if f.ImportScope(routes.ScopeEnvironment) != "" || len(tb.InScope("", routes.ScopeEnvironment)) != 0 {
		t.Error("a file route has an import scope")
	}
	if a.GroupID() != b.GroupID() || a.GroupID() == c.GroupID() || !strings.HasPrefix(a.GroupID(), "dataProject:opening") {
		t.Errorf("groups %q %q %q", a.GroupID(), b.GroupID(), c.GroupID())
	}
}

func TestPackageScopeFromEnv(t *testing.T) {
	t.Parallel()
	for v, want := range map[string]routes.PackageScope{"": routes.ScopeEnvironment, "environment": routes.ScopeEnvironment,
		" dataproject ": routes.ScopeDataProject, "dataProject": routes.ScopeDataProject} {
		got, err := routes.PackageScopeFromEnv(func(string) string { return v })
		if err != nil || got != want {
			t.Errorf("%q: %q, %v; want %q", v, got, err, want)
		}
	}
	_, err := routes.PackageScopeFromEnv(func(string) string { return "entity" })
	if err == nil || !strings.Contains(err.Error(), "PACKAGE_IMPORT_SCOPE") || !strings.Contains(err.Error(), "Enhanced parallel package import") {
		t.Errorf("err = %v", err)
	}
	c, err := routes.FromEnv(func(k string) string {
		return map[string]string{"BUCKET": "b", "PACKAGE_IMPORT_SCOPE": "dataProject",
			"ROUTES": `[{"route":"c","activityId":"` + guid + `","entity":"E"}]`}[k]
	})
	if err != nil || c.PackageScope != routes.ScopeDataProject {
		t.Errorf("FromEnv: %+v, %v", c, err)
	}
}
