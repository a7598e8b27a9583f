package release

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/fno-bridge/s3-fno/internal/imports/filing"
	"github.com/fno-bridge/s3-fno/internal/imports/importmsg"
	"github.com/fno-bridge/s3-fno/internal/shared/layout"
	"github.com/fno-bridge/s3-fno/internal/shared/s3io"
)

// Object is one object version a notification (or the sweep) names.
type Object struct {
	Bucket    string
	Key       string // decoded
	VersionID string
	ETag      string
	EventTime time.Time // zero when unknown
}

// Ref is the object version as an s3io.Ref.
func (o Object) Ref() s3io.Ref {
	return s3io.Ref{Bucket: o.Bucket, Key: o.Key, VersionID: s3io.NormalizeVersion(o.VersionID), ETag: s3io.NormalizeETag(o.ETag)}
}

// Outcome is what Notified did with an object.
type Outcome int

// The outcomes.
const (
	Requested Outcome = iota // its route got a release request
	Rejected                 // filed under rejected/: no route
	Skipped                  // not a file to import
)

// Notified is the router's (and the sweep's) step: for the objects named,
// it files under rejected/ those no route takes, skips what is not a file to
// import, and sends one release request per route that has any. It returns,
// per object, an error (nil when done with it) and what was done.
func (r *Releaser) Notified(ctx context.Context, objs []Object) ([]error, []Outcome) {
	errs := make([]error, len(objs))
	outs := make([]Outcome, len(objs))
	byRoute := map[string][]int{}
	var order []string
	for i, o := range objs {
		outs[i], errs[i] = r.classify(ctx, o)
		if errs[i] != nil || outs[i] != Requested {
			continue
		}
		route := r.routeOf(o.Key)
		if _, seen := byRoute[route]; !seen {
			order = append(order, route)
		}
		byRoute[route] = append(byRoute[route], i)
	}
	for _, route := range order {
		rt, _ := r.cfg.Routes.Lookup(route)
		err := r.Request(ctx, rt, false)
		if err != nil {
			r.log.ErrorContext(ctx, "release: could not request a release", "route", route, "error", err.Error())
		} else {
			r.log.InfoContext(ctx, "release: requested a release", "route", route, "group", rt.GroupID(), "files", len(byRoute[route]))
		}
		for _, i := range byRoute[route] {
			errs[i] = err
		}
	}
	return errs, outs
}

// classify decides what to do with one object.
func (r *Releaser) classify(ctx context.Context, o Object) (Outcome, error) {
	l := r.cfg.Layout
	log := r.log.With("key", o.Key, "bucket", o.Bucket, "versionId", o.VersionID)
	if o.Bucket != r.cfg.Bucket {
		log.WarnContext(ctx, "release: skipping an object of another bucket", "configuredBucket", r.cfg.Bucket)
		return Skipped, nil
	}
	route, file, inbound := l.Split(o.Key)
	switch {
	case !inbound:
		log.DebugContext(ctx, "release: skipping a key outside the inbound prefix")
		return Skipped, nil
	case strings.HasSuffix(o.Key, "/"):
		log.InfoContext(ctx, "release: skipping a folder placeholder")
		return Skipped, nil
	case strings.HasSuffix(o.Key, layout.StuckSuffix):
		log.DebugContext(ctx, "release: skipping a stuck report")
		return Skipped, nil
	}
	if _, ok := r.cfg.Routes.LookupFresh(ctx, route); ok {
		log.InfoContext(ctx, "release: notified", "route", route, "identity", importmsg.Identity(o.Bucket, o.Key, o.VersionID, o.ETag))
		return Requested, nil
	}
	reason := fmt.Sprintf("no route is configured for folder %q (configured: %s)", route, r.names())
	if route == "" {
		reason = "the file is directly in " + l.Inbound + "; files go in " + l.Inbound + "<route>/ (configured: " + r.names() + ")"
		file = strings.TrimPrefix(o.Key, l.Inbound)
	} else {
		file = route + "/" + file
	}
	err := filing.Reject(ctx, r.s3, l, r.now, r.log, r.cfg.Observers, filing.Rejection{Src: o.Ref(), EventTime: o.EventTime, File: file, Code: "no-route", Detail: reason})
	return Rejected, err
}
