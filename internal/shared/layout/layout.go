// Package layout says where every kind of object lives in the data bucket:
// the prefixes (inbound/, processed/, failed/, rejected/, _state/) and the
// keys of the state documents the functions keep there. Every function
// reads it; none owns it.
package layout

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Layout says where each kind of object lives in the bucket. Every prefix
// ends with "/". The zero value is not usable; use Default or FromEnv.
type Layout struct {
	Inbound   string // INBOUND_PREFIX, default "inbound/": dropped files
	Processed string // PROCESSED_PREFIX, default "processed/"
	Failed    string // FAILED_PREFIX, default "failed/"
	Rejected  string // REJECTED_PREFIX, default "rejected/"
	State     string // STATE_PREFIX, default "_state/": markers and ledger
}

// Default is the documented layout.
func Default() Layout {
	return Layout{Inbound: "inbound/", Processed: "processed/", Failed: "failed/", Rejected: "rejected/", State: "_state/"}
}

// Suffixes of the documents written beside files.
const (
	// StuckSuffix marks the report written beside a file in inbound/ whose
	// F&O message has not finished after STUCK_AFTER. Keys with this suffix
	// are never routed.
	StuckSuffix = ".stuck.json"
	// ResultSuffix is the result document beside a processed or failed file.
	ResultSuffix = ".result.json"
	// ReasonSuffix is the reason document beside a rejected file.
	ReasonSuffix = ".reason.json"
)

// DefaultConfigKey is where the configuration document (routes and export
// jobs) is, unless CONFIG_KEY says otherwise.
const DefaultConfigKey = "_config/config.json"

// TemplatesPrefix is where package templates live: a route's
// packageTemplate names a folder here holding Manifest.xml and
// PackageHeader.xml. It is fixed (the enqueue function may read nothing
// else under _config/).
const TemplatesPrefix = "_config/templates/"

// TemplateKey is the key of one file (Manifest.xml, PackageHeader.xml) of
// the package template named name.
func TemplateKey(name, file string) string { return TemplatesPrefix + name + "/" + file }

// Unrouted is the folder under rejected/ for files without a route.
const Unrouted = "_unrouted"

// ExportsFolder is the folder under failed/ for the result documents of
// package exports F&O did not finish cleanly, one folder per job.
const ExportsFolder = "_exports"

// Split takes a key under the inbound prefix apart: route is its first
// folder, file the rest. ok is false for keys outside inbound/. A key
// directly in inbound/ (no folder) gives route "".
func (l Layout) Split(key string) (route, file string, ok bool) {
	rest, found := strings.CutPrefix(key, l.Inbound)
	if !found {
		return "", "", false
	}
	route, file, hasFolder := strings.Cut(rest, "/")
	if !hasFolder {
		return "", rest, true
	}
	return route, file, true
}

// Inbound key of a file of a route.
func (l Layout) InboundKey(route, file string) string { return l.Inbound + route + "/" + file }

// ProcessedKey is processed/<route>/<yyyy>/<mm>/<dd>/<file>.
func (l Layout) ProcessedKey(route string, t time.Time, file string) string {
	return dated(l.Processed, route, t, file)
}

// FailedKey is failed/<route>/<yyyy>/<mm>/<dd>/<file>.
func (l Layout) FailedKey(route string, t time.Time, file string) string {
	return dated(l.Failed, route, t, file)
}

// FailedExportKey is failed/_exports/<job>/<yyyy>/<mm>/<dd>/<file>.
func (l Layout) FailedExportKey(job string, t time.Time, file string) string {
	return dated(l.Failed+ExportsFolder+"/", job, t, file)
}

// RejectedKey is rejected/<route>/<yyyy>/<mm>/<dd>/<file>; route "" means
// rejected/_unrouted/.
func (l Layout) RejectedKey(route string, t time.Time, file string) string {
	if route == "" {
		route = Unrouted
	}
	return dated(l.Rejected, route, t, file)
}

func dated(prefix, route string, t time.Time, file string) string {
	t = t.UTC()
	return fmt.Sprintf("%s%s/%04d/%02d/%02d/%s", prefix, route, t.Year(), int(t.Month()), t.Day(), file)
}

// MarkerKey is _state/markers/<hash>.json, the idempotency marker of one
// source object (hash: importmsg.Identity).
func (l Layout) MarkerKey(hash string) string { return l.State + "markers/" + hash + ".json" }

// MarkerPrefix is where markers live.
func (l Layout) MarkerPrefix() string { return l.State + "markers/" }

// ReleasedKey is _state/released/<route>/<identity>.json: written once a
// file of a route has been sent to the FIFO queue, in the route's order;
// removed when the file is filed. A file in inbound/ without one is waiting
// to be released.
func (l Layout) ReleasedKey(route, identity string) string {
	return l.ReleasedPrefix(route) + identity + ".json"
}

// ReleasedPrefix is where a route's released markers live.
func (l Layout) ReleasedPrefix(route string) string { return l.ReleasedRoot() + route + "/" }

// ReleasedRoot is where every route's released markers live.
func (l Layout) ReleasedRoot() string { return l.State + "released/" }

// BoardKey is _state/status/imports.json: the poller's summary of every
// import in flight, so a status view needs one read, not one per record.
func (l Layout) BoardKey() string { return l.State + "status/imports.json" }

// JobStatusPrefix holds, per export job, the last run and the last landing
// (_state/status/jobs/<job>/last-run.json, last-landing.json): one listing
// gives every job's times.
func (l Layout) JobStatusPrefix() string { return l.State + "status/jobs/" }

// PausedKey is _state/paused/<route>.json: while it exists the route's
// files wait in inbound/, in order.
func (l Layout) PausedKey(route string) string { return l.PausedPrefix() + route + ".json" }

// PausedPrefix holds the paused markers.
func (l Layout) PausedPrefix() string { return l.State + "paused/" }

// NotifiedKey is _state/notified/<name>.json: written before a
// notification is sent, so it is sent once.
func (l Layout) NotifiedKey(name string) string { return l.State + "notified/" + name + ".json" }

// LedgerPrefix is where ledger records live.
func (l Layout) LedgerPrefix() string { return l.State + "ledger/" }

// QuarantineKey is where a state document that cannot be read is moved
// (_state/quarantine/<its key under _state/>), out of the listings that
// would trip on it every run, and kept for a person to look at.
func (l Layout) QuarantineKey(key string) string {
	return l.State + "quarantine/" + strings.TrimPrefix(key, l.State)
}

// WhereRoot is the where-index: _state/where/<file name>/<identity>.json,
// one pointer per file version filed under processed/, failed/ or
// rejected/, written once it is filed. Filed files live in dated folders,
// so without it a file could be found by its name only by listing every
// day; with it, every time a name went through is one listing.
func (l Layout) WhereRoot() string { return l.State + "where/" }

// WhereFolder is the where-index folder of a file name (the last element
// of its key): _state/where/<name>/. A name too long to fit in a key with
// its pointers is cut, and a hash of the whole name keeps it apart from
// others cut the same way.
func (l Layout) WhereFolder(name string) string {
	if len(name) > maxWhereName {
		cut := maxWhereName - 17
		for cut > 0 && !utf8.RuneStart(name[cut]) {
			cut--
		}
		sum := sha256.Sum256([]byte(name))
		name = name[:cut] + "~" + hex.EncodeToString(sum[:8])
	}
	return l.WhereRoot() + name + "/"
}

// WhereKey is the where-index pointer of one file version (by its
// identity) filed under a name.
func (l Layout) WhereKey(name, identity string) string {
	return l.WhereFolder(name) + identity + ".json"
}

// maxWhereName bounds the name part of a where-index key, leaving room for
// the state prefix and the identity within S3's 1,024 bytes.
const maxWhereName = 700

// PackageLockKey is _state/packages/<scope>.json: the lock a package import
// scope (routes.Route.ImportScope: "environment" or
// "dataProject:<project>") is held by while one of its packages is
// released, imported or running in F&O, so that the scope's next package
// waits in inbound/. The scope is path-escaped, so a data project name
// with "/" stays one key.
func (l Layout) PackageLockKey(scope string) string {
	return l.PackageLockPrefix() + url.PathEscape(scope) + ".json"
}

// PackageLockPrefix is where package import locks live.
func (l Layout) PackageLockPrefix() string { return l.State + "packages/" }

// SweepStateKey holds the time of the last sweep.
func (l Layout) SweepStateKey() string { return l.State + "sweep.json" }

// PollerLeaseKey is the lease a poller run holds while it runs, so that two
// runs (each with its own F&O request budget) never overlap. Released runs
// delete it; a run that died leaves it to expire.
func (l Layout) PollerLeaseKey() string { return l.State + "poller-lease.json" }

// Base is the last path element of a key (for messages).
func Base(key string) string { return path.Base(key) }

// FromEnv reads the optional prefix variables (getenv: os.Getenv when nil).
func FromEnv(getenv func(string) string) (Layout, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	l := Default()
	fields := []struct {
		name string
		p    *string
	}{
		{"INBOUND_PREFIX", &l.Inbound}, {"PROCESSED_PREFIX", &l.Processed}, {"FAILED_PREFIX", &l.Failed},
		{"REJECTED_PREFIX", &l.Rejected}, {"STATE_PREFIX", &l.State},
	}
	for _, f := range fields {
		v := getenv(f.name)
		if v == "" {
			continue
		}
		v = strings.TrimSpace(v)
		if !strings.HasSuffix(v, "/") {
			v += "/"
		}
		if v == "/" || strings.HasPrefix(v, "/") || strings.Contains(v, "//") || hasControl(v) || hasDotSegment(v) {
			return Layout{}, fmt.Errorf("config: %s: %q is not a usable key prefix (e.g. %q)", f.name, getenv(f.name), *f.p)
		}
		*f.p = v
	}
	for i, a := range fields {
		for _, b := range fields[i+1:] {
			if strings.HasPrefix(*a.p, *b.p) || strings.HasPrefix(*b.p, *a.p) {
				return Layout{}, fmt.Errorf("config: %s (%q) and %s (%q) overlap: every prefix must be separate", a.name, *a.p, b.name, *b.p)
			}
		}
	}
	return l, nil
}

// hasDotSegment reports a "." or ".." folder in a prefix. S3 keeps them as
// plain characters, but tools that map keys to paths (sync to disk, zip)
// resolve them out of the prefix; the export side refuses them too.
func hasDotSegment(prefix string) bool {
	for _, seg := range strings.Split(strings.TrimSuffix(prefix, "/"), "/") {
		if seg == "." || seg == ".." {
			return true
		}
	}
	return false
}

// hasControl reports C0 and C1 control characters: S3 lists keys in XML,
// which cannot carry C0 controls, and neither kind reads in a log.
func hasControl(s string) bool {
	return strings.IndexFunc(s, unicode.IsControl) >= 0
}
