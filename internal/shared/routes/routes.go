// Package routes is the route table: which folder under inbound/ goes to
// which F&O recurring import job (ROUTES), with its entity, ordering rule and
// settle window; Config adds the bucket and its layout. It is read and
// validated once, at cold start; every error names the variable (and for
// ROUTES the route's index, name and field).
package routes

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"
	"unicode"
)

// Kind is what a route's files are and how they reach F&O.
type Kind string

// The kinds of route: two kinds of recurring import job, and the package
// API.
const (
	KindFile    Kind = "file"    // one data file per message; entity is required
	KindPackage Kind = "package" // a data package zip per message; entity is not sent
	// KindDataProject: each file is a data package imported into a data
	// project through the package API (ImportFromPackage), one at a time
	// per PackageScope; no recurring job.
	KindDataProject Kind = "dataProject"
)

// Route maps the first folder under inbound/ to an import job.
type Route struct {
	// Name is the folder: inbound/<Name>/<file>.
	Name string `json:"route"`
	// ActivityID is the recurring job's activity ID (a GUID).
	ActivityID string `json:"activityId"`
	// Entity is the entity's display name, sent to F&O for file jobs. It is
	// also the FIFO message group (see GroupID).
	Entity string `json:"entity"`
	// Company is the legal entity; optional.
	Company string `json:"company"`
	// Kind is "file" (the default), "package" or "dataProject".
	Kind Kind `json:"kind"`
	// DefinitionGroupID is the data project a dataProject route imports
	// into, and LegalEntityID its legal entity (both required there).
	DefinitionGroupID string `json:"definitionGroupId"`
	LegalEntityID     string `json:"legalEntityId"`
	// Execute and Overwrite are a dataProject route's ImportFromPackage
	// flags (default true): import into the target, not only into staging;
	// replace the data project's definition with the package's.
	Execute   bool `json:"-"`
	Overwrite bool `json:"-"`
	// PackageTemplate, on a dataProject route, names a folder under
	// _config/templates/ holding Manifest.xml and PackageHeader.xml: a
	// file dropped that is not a data package is imported wrapped in a
	// package built from them. Empty: such files are refused.
	PackageTemplate string `json:"packageTemplate"`
	// Order is how the route's files are ordered: OrderTime (the default)
	// or OrderName.
	Order Order `json:"order"`
	// Settle is how long after S3 stored a file it waits before it may be
	// sent: time for files uploaded alongside it to become visible, so an
	// older one is not overtaken. JSON: a duration such as "5s".
	Settle time.Duration `json:"-"`
	// PauseOnFailure pauses the route when one of its files fails, so no
	// later file of it reaches F&O before a person has looked.
	PauseOnFailure bool `json:"pauseOnFailure"`
}

// Order is a route's ordering rule.
type Order string

// The two ordering rules.
const (
	OrderTime Order = "time" // the time S3 stored the file, then its key
	OrderName Order = "name" // the key, for producers that number their files
)

// DefaultSettle is a route's settle window unless it sets one.
const DefaultSettle = 5 * time.Second

// MaxSettle bounds the settle window: files wait at most this long.
const MaxSettle = 10 * time.Minute

// GroupID is the FIFO MessageGroupId of the route's files: its entity (or,
// for a package route without one, "route:<name>"; for a dataProject route,
// "dataProject:<definitionGroupId>", lowercased), made acceptable to SQS.
//
// A dataProject route's group is its data project whatever the
// PackageScope: a group only has to keep one route's passes and files from
// overlapping. What keeps package imports one at a time in their scope is
// the scope's lock, which a release pass takes with a conditional write, so
// two groups that share a scope cannot both take it.
func (r Route) GroupID() string {
	if r.Kind == KindDataProject {
		return SanitizeGroupID("dataProject:" + strings.ToLower(r.DefinitionGroupID))
	}
	if strings.TrimSpace(r.Entity) != "" {
		return SanitizeGroupID(r.Entity)
	}
	return SanitizeGroupID("route:" + r.Name)
}

// maxGroupID is SQS's limit on MessageGroupId (and MessageDeduplicationId).
const maxGroupID = 128

// SanitizeGroupID maps s onto what SQS accepts as a MessageGroupId:
// alphanumerics and punctuation (ASCII 0x21-0x7E), at most 128 characters.
// Every other character becomes '_'. A value that had to be changed, or is
// too long, gets "~" and 12 hex digits of its SHA-256 appended (after
// truncation), so two different entities never share a group by accident
// of sanitizing. The mapping is deterministic. An empty s gives "_" with
// the hash, so that it does not share "_" with the entity named "_".
func SanitizeGroupID(s string) string {
	var b strings.Builder
	changed := false
	for _, r := range s {
		if r >= 0x21 && r <= 0x7e {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
			changed = true
		}
	}
	out := b.String()
	if out == "" {
		out, changed = "_", true
	}
	if !changed && len(out) <= maxGroupID {
		return out
	}
	sum := sha256.Sum256([]byte(s))
	suffix := "~" + hex.EncodeToString(sum[:6])
	if len(out) > maxGroupID-len(suffix) {
		out = out[:maxGroupID-len(suffix)]
	}
	return out + suffix
}

// Table is the set of configured routes, looked up by folder name: a fixed
// one (Parse), or one that follows the configuration document (Live).
type Table struct {
	byName map[string]Route
	order  []string
	live   *live
}

// Lookup returns the route for a folder name.
func (t *Table) Lookup(name string) (Route, bool) {
	if t == nil {
		return Route{}, false
	}
	if t.live != nil {
		return t.live.current().Lookup(name)
	}
	r, ok := t.byName[name]
	return r, ok
}

// All returns the routes in configuration order.
func (t *Table) All() []Route {
	if t == nil {
		return nil
	}
	if t.live != nil {
		return t.live.current().All()
	}
	out := make([]Route, 0, len(t.order))
	for _, n := range t.order {
		out = append(out, t.byName[n])
	}
	return out
}

// Len is the number of routes.
func (t *Table) Len() int {
	if t == nil {
		return 0
	}
	if t.live != nil {
		return t.live.current().Len()
	}
	return len(t.order)
}

// guidRE accepts a GUID with or without braces, any case.
var guidRE = regexp.MustCompile(`^\{?[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\}?$`)

// ErrNoRoutes is returned for an empty ROUTES array.
var ErrNoRoutes = errors.New("ROUTES: at least one route is required")

// Parse reads the ROUTES JSON array and checks every route. Errors read like
// `ROUTES[1] ("customers"): activityId: "x" is not a GUID`.
func Parse(data string) (*Table, error) {
	if strings.TrimSpace(data) == "" {
		return nil, fmt.Errorf("ROUTES is required: a JSON array of {\"route\",\"activityId\",\"entity\",\"company\",\"kind\"}")
	}
	var raws []json.RawMessage
	if err := json.Unmarshal([]byte(data), &raws); err != nil {
		return nil, fmt.Errorf("ROUTES: not a JSON array of routes: %w", err)
	}
	if len(raws) == 0 {
		return nil, ErrNoRoutes
	}
	return ParseList(raws, "ROUTES")
}

// ParseList checks each route of a list, naming errors after what (for
// example "routes" for the configuration document's). An empty list is a
// table without routes.
func ParseList(raws []json.RawMessage, what string) (*Table, error) {
	t := &Table{byName: map[string]Route{}}
	for i, raw := range raws {
		r, err := parseOne(raw)
		where := fmt.Sprintf("%s[%d]", what, i)
		if r.Name != "" {
			where += fmt.Sprintf(" (%q)", r.Name)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		if _, dup := t.byName[r.Name]; dup {
			return nil, fmt.Errorf("%s: route: %q is configured twice", where, r.Name)
		}
		t.byName[r.Name] = r
		t.order = append(t.order, r.Name)
	}
	return t, nil
}

// routeFields lists the fields a route may have, for messages.
const routeFields = "route, activityId, entity, company, kind, order, settle, pauseOnFailure; for kind dataProject: route, kind, definitionGroupId, legalEntityId, execute, overwrite, packageTemplate, order, settle, pauseOnFailure"

func parseOne(raw json.RawMessage) (Route, error) {
	// encoding/json matches field names case-insensitively; a typo such as
	// "activityID" must not pass silently, so check the exact spelling.
	// The fields are decoded once and read from here on.
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil || fields == nil {
		return Route{}, fmt.Errorf("not a route object (fields %s)", routeFields)
	}
	// Still report the name when it is readable.
	var name string
	_ = json.Unmarshal(fields["route"], &name)
	for k := range fields {
		switch k {
		case "route", "activityId", "entity", "company", "kind", "order", "settle",
			"definitionGroupId", "legalEntityId", "execute", "overwrite", "packageTemplate", "pauseOnFailure":
		default:
			return Route{Name: name}, fmt.Errorf("unknown field %q (fields are %s)", k, routeFields)
		}
	}
	var r Route
	if err := json.Unmarshal(raw, &r); err != nil {
		return Route{Name: name}, fmt.Errorf("not a route object (fields %s): %w", routeFields, err)
	}
	var settle *string
	if v, ok := fields["settle"]; ok {
		if err := json.Unmarshal(v, &settle); err != nil {
			return Route{Name: name}, fmt.Errorf("settle: not a string: %w", err)
		}
	}
	r.Name = strings.TrimSpace(r.Name)
	r.ActivityID = strings.TrimSpace(r.ActivityID)
	r.Entity = strings.TrimSpace(r.Entity)
	r.Company = strings.TrimSpace(r.Company)
	if err := checkName(r.Name); err != nil {
		return r, err
	}
	if err := checkKind(&r, fields); err != nil {
		return r, err
	}
	switch Order(strings.ToLower(strings.TrimSpace(string(r.Order)))) {
	case "", OrderTime:
		r.Order = OrderTime
	case OrderName:
		r.Order = OrderName
	default:
		return r, fmt.Errorf("order: %q must be \"time\" (when S3 stored the file, then its key) or \"name\" (the key)", r.Order)
	}
	r.Settle = DefaultSettle
	if settle != nil {
		d, err := time.ParseDuration(strings.TrimSpace(*settle))
		if err != nil || d < 0 || d > MaxSettle {
			return r, fmt.Errorf("settle: %q must be a duration from 0s to %s, such as \"5s\"", *settle, MaxSettle)
		}
		r.Settle = d
	}
	return r, nil
}

// checkName checks a route's folder name.
func checkName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("route: is required (the folder name under inbound/)")
	case strings.ContainsAny(name, "/\\"):
		return fmt.Errorf("route: %q must be a single folder name, without '/'", name)
	case name == "." || name == "..":
		return fmt.Errorf("route: %q is not a usable folder name", name)
	case strings.HasPrefix(name, "_"):
		return fmt.Errorf("route: %q must not start with '_' (reserved for _unrouted and _state)", name)
	case hasControl(name):
		return fmt.Errorf("route: %q contains control characters", name)
	}
	return nil
}

// checkKind reads the route's kind and checks the fields that kind needs.
func checkKind(r *Route, fields map[string]json.RawMessage) error {
	switch k := strings.ToLower(string(r.Kind)); {
	case k == "" || k == string(KindFile):
		r.Kind = KindFile
	case k == string(KindPackage):
		r.Kind = KindPackage
	case k == strings.ToLower(string(KindDataProject)):
		r.Kind = KindDataProject
	default:
		return fmt.Errorf("kind: %q must be \"file\", \"package\" or \"dataProject\"", r.Kind)
	}
	if err := checkDataProject(r, fields); err != nil || r.Kind == KindDataProject {
		return err
	}
	if r.ActivityID == "" {
		return fmt.Errorf("activityId: is required (the recurring job's activity ID)")
	}
	if !guidRE.MatchString(r.ActivityID) {
		return fmt.Errorf("activityId: %q is not a GUID", r.ActivityID)
	}
	if r.Kind == KindFile && r.Entity == "" {
		return fmt.Errorf("entity: is required for kind \"file\" (the entity's display name, e.g. \"Customer groups\")")
	}
	if hasControl(r.Entity) || hasControl(r.Company) {
		return fmt.Errorf("entity/company: control characters are not allowed")
	}
	return nil
}

// hasControl reports C0 and C1 control characters (unicode.IsControl), as
// the export side's prefix check does: S3 lists keys in XML, which cannot
// carry C0 controls, and neither kind reads in a log or a console.
func hasControl(s string) bool {
	return strings.IndexFunc(s, unicode.IsControl) >= 0
}

// Names lists the configured route names, sorted (for messages).
func (t *Table) Names() []string {
	if t == nil {
		return nil
	}
	if t.live != nil {
		return t.live.current().Names()
	}
	out := append([]string(nil), t.order...)
	sort.Strings(out)
	return out
}
