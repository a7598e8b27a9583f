package release

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/fno-bridge/s3-fno/internal/imports/dmfpackage"
	"github.com/fno-bridge/s3-fno/internal/imports/ledger"
	"github.com/fno-bridge/s3-fno/internal/shared/metrics"
	"github.com/fno-bridge/s3-fno/internal/shared/notify"
	"github.com/fno-bridge/s3-fno/internal/shared/routes"
)

// Package imports (routes of kind dataProject) go one at a time per scope
// (routes.PackageScope): F&O's ImportFromPackage is not safe in parallel,
// and the next package may start only once the previous execution is
// final, which can take hours. Waiting in the FIFO queue would cost a
// receive count per look and, after maxReceiveCount, drop the package into
// the dead-letter queue out of order; so a package waits where it was
// dropped. A pass releases a dataProject route's first settled package
// only after taking its scope's lock (ledger.PackageLock, a conditional
// write: of two passes in different message groups, one gets it), and
// nothing while another package holds it. The lock stays through the
// import; the poller removes it when the execution is final and asks for a
// pass of each route of the scope. Drop order holds within a route: the
// pass always takes the route's first waiting package.

// releasePackage is releaseSettled for a dataProject route: at most one
// package, under its scope's lock. Empty files are rejected on the way.
// It never asks for a follow-up while the scope is busy: the lock's
// release brings the next pass.
func (r *Releaser) releasePackage(ctx context.Context, log *slog.Logger, rt routes.Route, files []file, res *Result) (int, time.Time, error) {
	store, err := r.lockStore()
	if err != nil {
		return 0, time.Time{}, err
	}
	scope := rt.ImportScope(r.cfg.PackageScope)
	pick, unreleased, next, err := r.firstPackage(ctx, rt, files, res)
	if err != nil || pick == nil {
		r.held(rt, 0)
		return 0, next, err
	}
	held, err := store.GetLock(ctx, scope)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("release %s: read the lock of package import scope %q: %w", rt.Name, scope, err)
	}
	if held != nil && held.Route == rt.Name && held.State == ledger.LockReleased && held.Identity != pick.identity && !listed(files, held.Identity) {
		// Released, then gone from inbound/ before its import began
		// (removed by someone): nothing of it can reach F&O any more.
		if ok, err := store.DeleteLock(ctx, held); err != nil || !ok {
			return 0, time.Time{}, fmt.Errorf("release %s: remove the stale lock of scope %q: %v", rt.Name, scope, err)
		}
		log.WarnContext(ctx, "release: removed the lock of a package that left inbound/ before its import began", "scope", scope, "lockedBy", held.Key)
		held = nil
	}
	busy := func(held *ledger.HeldLock) bool {
		if held == nil || (held.Identity == pick.identity && held.State == ledger.LockReleased) {
			return false
		}
		r.held(rt, unreleased)
		res.Held += unreleased
		log.InfoContext(ctx, "release: a package import of this route's scope is in flight; the route's packages wait in inbound/",
			"scope", scope, "waiting", unreleased, "lockedBy", held.Key, "lockState", held.State, "executionId", held.ExecutionID, "next", pick.Key)
		return true
	}
	if busy(held) {
		return 0, time.Time{}, nil
	}
	// The template is read only once the scope is free for this package:
	// a busy scope can hold the route's files for hours of passes.
	if broken, err := r.templateBroken(ctx, rt); err != nil || broken {
		if broken {
			r.held(rt, unreleased)
			res.Held += unreleased
		}
		return 0, time.Time{}, err
	}
	if held == nil {
		now := r.now().UTC()
		taken, err := store.TakeLock(ctx, ledger.PackageLock{Scope: scope, Route: rt.Name, Key: pick.Key, VersionID: pick.VersionID,
			Identity: pick.identity, State: ledger.LockReleased, TakenAt: now, UpdatedAt: now})
		if err != nil {
			return 0, time.Time{}, fmt.Errorf("release %s: take the lock of package import scope %q: %w", rt.Name, scope, err)
		}
		if !taken {
			if held, err = store.GetLock(ctx, scope); err != nil || held == nil {
				return 0, time.Time{}, fmt.Errorf("release %s: the lock of scope %q was taken and is not readable: %v", rt.Name, scope, err)
			}
		}
	}
	if busy(held) {
		return 0, time.Time{}, nil
	}
	r.held(rt, unreleased-1)
	res.Held += unreleased - 1
	sent, err := r.sendFiles(ctx, log, rt, []file{*pick}, false)
	res.Released += sent
	if err == nil {
		log.InfoContext(ctx, "release: released a package under its scope's lock", "scope", scope, "key", pick.Key, "waiting", unreleased-1)
	}
	return sent, time.Time{}, err
}

// templateBroken reports whether the route's package template (if it has
// one) cannot be used. Then its files wait in inbound/, in order, and the
// scope is left to the other routes: the template is the route's
// configuration, so rejecting each file dropped meanwhile would only make
// a person replay them one by one once it is fixed. The poller's sweep
// asks for a pass of such waiting files every SWEEP_AFTER, and the first
// pass after the fix releases them. A read that failed is an error (the
// pass is retried).
func (r *Releaser) templateBroken(ctx context.Context, rt routes.Route) (bool, error) {
	if rt.PackageTemplate == "" {
		return false, nil
	}
	_, err := dmfpackage.LoadTemplate(ctx, r.s3, r.cfg.Bucket, rt.PackageTemplate)
	var te *dmfpackage.TemplateError
	switch {
	case err == nil:
		return false, nil
	case errors.As(err, &te):
		r.TemplateRefused(ctx, rt, te)
		return true, nil
	}
	return false, fmt.Errorf("release %s: %w", rt.Name, err)
}

// TemplateRefused tells of a route's package template that cannot be
// used: at ERROR in the log each time, and to a person once a day per
// file and reason (kind "config").
func (r *Releaser) TemplateRefused(ctx context.Context, rt routes.Route, te *dmfpackage.TemplateError) {
	r.log.ErrorContext(ctx, "release: the route's package template cannot be used; its files wait in inbound/ until it is fixed",
		"route", rt.Name, "template", te.Key, "reason", te.Reason)
	r.cfg.Observers.Notify.Send(ctx, notify.Event{Kind: notify.Config, ID: "template\x00" + te.Key + "\x00" + te.Reason + "\x00" + r.now().UTC().Format(time.DateOnly),
		What: "route " + rt.Name + ": package template " + te.Name + " cannot be used",
		Body: "The files dropped into route " + rt.Name + " that are not data packages are imported wrapped in its package template, and it cannot be used: " +
			te.Reason + ". The route's files wait in inbound/, in order, until the template is fixed; nothing is rejected for it.",
		Fields: [][2]string{{"Route", rt.Name}, {"Template file", te.Key}, {"Reason", te.Reason}}})
}

// firstPackage is the route's first settled package not released yet, and
// how many files wait unreleased in all (it among them). Settled empty
// files are rejected on the way; next is when the first file that has not
// settled does, if no package has.
func (r *Releaser) firstPackage(ctx context.Context, rt routes.Route, files []file, res *Result) (pick *file, unreleased int, next time.Time, err error) {
	now := r.now()
	for i := range files {
		f := &files[i]
		if f.released {
			continue
		}
		if at := settledAt(rt, f.Version); at.After(now) || !next.IsZero() {
			if next.IsZero() {
				next = at
			}
			res.Waiting++
			unreleased++
			continue
		}
		if f.Size == 0 {
			if err := r.rejectEmpty(ctx, rt, *f); err != nil {
				return nil, 0, time.Time{}, err
			}
			res.Rejected++
			continue
		}
		unreleased++
		if pick == nil {
			pick = f
		}
	}
	if pick != nil {
		next = time.Time{}
	}
	return pick, unreleased, next, nil
}

// listed reports whether a file of the listing has the identity.
func listed(files []file, identity string) bool {
	for _, f := range files {
		if f.identity == identity {
			return true
		}
	}
	return false
}

// held records how many of a route's files wait behind its scope's lock.
func (r *Releaser) held(rt routes.Route, n int) {
	r.cfg.Observers.Metrics.Set("FilesHeld", float64(max(n, 0)), metrics.Route, rt.Name)
}

// lockStore is the ledger's view of the bucket, for the package import
// locks. Only a pass needs it (the router never runs one), so it is
// checked here rather than asked of every S3 client a Releaser gets.
func (r *Releaser) lockStore() (*ledger.Store, error) {
	s, ok := r.s3.(ledger.S3)
	if !ok {
		return nil, fmt.Errorf("release: this S3 client cannot read package import locks (no GetObject)")
	}
	return &ledger.Store{S3: s, Bucket: r.cfg.Bucket, Layout: r.cfg.Layout}, nil
}

// RequestScope asks for a pass of each route of a package import scope,
// starting with the one after after (so a busy route does not always go
// first): the scope's lock went, and whichever pass runs first takes it
// for its route's next package.
func (r *Releaser) RequestScope(ctx context.Context, scope, after string) error {
	rts := r.cfg.Routes.InScope(scope, r.cfg.PackageScope)
	start := 0
	for i, rt := range rts {
		if rt.Name == after {
			start = i + 1
		}
	}
	var first error
	for i := range rts {
		rt := rts[(start+i)%len(rts)]
		if err := r.Request(ctx, rt, false); err != nil && first == nil {
			first = err
		}
	}
	return first
}
