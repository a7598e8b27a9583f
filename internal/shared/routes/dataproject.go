package routes

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/fno-bridge/s3-fno/internal/shared/layout"
)

// PackageScope is how far "one package import at a time" reaches
// (PACKAGE_IMPORT_SCOPE). ImportFromPackage is not safe in parallel: by
// default F&O runs one package import at a time per environment; with
// "Enhanced parallel package import" enabled in its Data management
// framework parameters, one at a time per data project.
type PackageScope string

// The two scopes.
const (
	ScopeEnvironment PackageScope = "environment" // the default
	ScopeDataProject PackageScope = "dataProject"
)

// PackageScopeFromEnv reads PACKAGE_IMPORT_SCOPE (getenv: os.Getenv when
// nil); empty means ScopeEnvironment.
func PackageScopeFromEnv(getenv func(string) string) (PackageScope, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	v := strings.TrimSpace(getenv("PACKAGE_IMPORT_SCOPE"))
	switch {
	case v == "" || strings.EqualFold(v, string(ScopeEnvironment)):
		return ScopeEnvironment, nil
	case strings.EqualFold(v, string(ScopeDataProject)):
		return ScopeDataProject, nil
	}
	return "", fmt.Errorf("config: PACKAGE_IMPORT_SCOPE %q must be %q (one package import at a time per F&O environment, the default) "+
		"or %q (one at a time per data project, only where F&O's \"Enhanced parallel package import\" is enabled)",
		v, ScopeEnvironment, ScopeDataProject)
}

// ImportScope names what a dataProject route's package imports hold, one at
// a time: "environment", or "dataProject:<definitionGroupId, lowercased>"
// (F&O's data project names are not case-sensitive). It is "" for the
// other kinds.
func (r Route) ImportScope(s PackageScope) string {
	if r.Kind != KindDataProject {
		return ""
	}
	if s == ScopeDataProject {
		return "dataProject:" + strings.ToLower(r.DefinitionGroupID)
	}
	return string(ScopeEnvironment)
}

// InScope lists, in configuration order, the dataProject routes whose
// package imports share scope (ImportScope) under s.
func (t *Table) InScope(scope string, s PackageScope) []Route {
	var out []Route
	for _, r := range t.All() {
		if scope != "" && r.ImportScope(s) == scope {
			out = append(out, r)
		}
	}
	return out
}

// dataProjectFields are the fields only a dataProject route has.
var dataProjectFields = []string{"definitionGroupId", "legalEntityId", "execute", "overwrite", "packageTemplate"}

// flags are the Boolean fields of a dataProject route, read apart so that
// their absence can mean true.
type flags struct {
	Execute   *bool `json:"execute"`
	Overwrite *bool `json:"overwrite"`
}

// checkDataProject checks the fields of a kind "dataProject" route, or that
// no other kind has them. fields are the route's JSON fields as written.
func checkDataProject(r *Route, fields map[string]json.RawMessage) error {
	if r.Kind != KindDataProject {
		for _, f := range dataProjectFields {
			if _, ok := fields[f]; ok {
				return fmt.Errorf("%s: only a route of kind \"dataProject\" has it (this one is %q)", f, r.Kind)
			}
		}
		return nil
	}
	switch {
	case present(fields, "activityId"):
		return fmt.Errorf("activityId: a route of kind \"dataProject\" has none: its packages go through the package API into the data project definitionGroupId, not to a recurring job")
	case present(fields, "entity"):
		return fmt.Errorf("entity: a route of kind \"dataProject\" has none: each package's Manifest.xml names its entities")
	case present(fields, "company"):
		return fmt.Errorf("company: a route of kind \"dataProject\" names its legal entity in legalEntityId")
	}
	r.DefinitionGroupID = strings.TrimSpace(r.DefinitionGroupID)
	r.LegalEntityID = strings.TrimSpace(r.LegalEntityID)
	switch {
	case r.DefinitionGroupID == "":
		return fmt.Errorf("definitionGroupId: is required for kind \"dataProject\" (the name of the data project in F&O's Data management workspace)")
	case r.LegalEntityID == "":
		return fmt.Errorf("legalEntityId: is required for kind \"dataProject\" (the legal entity to import into, e.g. \"USMF\")")
	case hasControl(r.DefinitionGroupID) || hasControl(r.LegalEntityID):
		return fmt.Errorf("definitionGroupId/legalEntityId: control characters are not allowed")
	}
	var f flags
	if err := json.Unmarshal(fieldsJSON(fields, "execute", "overwrite"), &f); err != nil {
		return fmt.Errorf("execute/overwrite: must be true or false: %w", err)
	}
	r.Execute, r.Overwrite = f.Execute == nil || *f.Execute, f.Overwrite == nil || *f.Overwrite
	return checkTemplate(r, fields)
}

// maxTemplateName bounds a packageTemplate name (S3 keys are at most 1,024
// bytes).
const maxTemplateName = 200

// checkTemplate checks a dataProject route's packageTemplate: the name of
// one folder under layout.TemplatesPrefix, where the enqueue function may
// read (and nowhere else under _config/).
func checkTemplate(r *Route, fields map[string]json.RawMessage) error {
	if _, ok := fields["packageTemplate"]; !ok {
		return nil
	}
	name := strings.TrimSpace(r.PackageTemplate)
	r.PackageTemplate = name
	where := fmt.Sprintf("the name of a folder under %s holding Manifest.xml and PackageHeader.xml, such as %q for %s",
		layout.TemplatesPrefix, "customer-groups", layout.TemplateKey("customer-groups", "Manifest.xml"))
	switch {
	case name == "":
		return fmt.Errorf("packageTemplate: is empty; give %s, or leave the field out", where)
	case strings.HasPrefix(name, layout.TemplatesPrefix):
		return fmt.Errorf("packageTemplate: %q: give the folder's name only (without %s), %s", name, layout.TemplatesPrefix, where)
	case strings.ContainsAny(name, "/\\") || name == "." || name == ".." || hasControl(name) || len(name) > maxTemplateName:
		return fmt.Errorf("packageTemplate: %q must be %s (one folder, at most %d bytes, no '/', no control characters)", name, where, maxTemplateName)
	}
	return nil
}

// present reports a field written with a value other than null or "".
func present(fields map[string]json.RawMessage, name string) bool {
	v, ok := fields[name]
	s := strings.TrimSpace(string(v))
	return ok && s != "null" && s != `""`
}

// fieldsJSON is an object of the named fields only.
func fieldsJSON(fields map[string]json.RawMessage, names ...string) []byte {
	sub := map[string]json.RawMessage{}
	for _, n := range names {
		if v, ok := fields[n]; ok {
			sub[n] = v
		}
	}
	b, _ := json.Marshal(sub)
	return b
}
