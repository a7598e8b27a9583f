package release

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"golang.org/x/sync/errgroup"

	"github.com/fno-bridge/s3-fno/internal/imports/filing"
	"github.com/fno-bridge/s3-fno/internal/imports/importmsg"
	"github.com/fno-bridge/s3-fno/internal/imports/pause"
	"github.com/fno-bridge/s3-fno/internal/shared/layout"
	"github.com/fno-bridge/s3-fno/internal/shared/metrics"
	"github.com/fno-bridge/s3-fno/internal/shared/routes"
	"github.com/fno-bridge/s3-fno/internal/shared/s3io"
)

// Result is what one pass did.
type Result struct {
	Listed   int  `json:"listed"`           // files of the route in inbound/ (waiting or in flight)
	Released int  `json:"released"`         // sent to the queue, in order
	Rejected int  `json:"rejected"`         // empty files filed under rejected/
	Waiting  int  `json:"waiting"`          // not settled yet: left for a later pass
	Late     int  `json:"late"`             // released behind a younger file already sent
	Held     int  `json:"held"`             // packages waiting while a package import of their scope is in flight
	Paused   bool `json:"paused,omitempty"` // the route is paused: nothing released
	Lists    int  `json:"lists"`            // listings of the folder
}

// Released is the released marker's content.
type Released struct {
	Key        string    `json:"key"`
	VersionID  string    `json:"versionId,omitempty"`
	DedupID    string    `json:"dedupId"`
	ReleasedAt time.Time `json:"releasedAt"`
}

// skewMargin is how far the requester's clock may run ahead of the pass's:
// the pass lists only after the request's second has ended by this margin.
const skewMargin = time.Second

// reserve is the time a pass keeps free before its deadline to hand over
// to a follow-up request: one send (with its retries), the markers in
// flight and the follow-up request must fit in it.
const reserve = 10 * time.Second

// markerConcurrency bounds the released-marker writes in flight: one
// sendFiles' worth.
const markerConcurrency = 10

// errNoTime: waiting, or sending more, would run into the invocation's
// deadline.
var errNoTime = errors.New("not enough time left before the deadline")

// Pass releases a route's settled files in order. When it released some and
// others have not settled, it hands over to a follow-up request (so the
// files it released are not held behind it in the group), as it does when
// the invocation's time runs short with files still to send; when it
// released none, it waits for the first to settle, as long as the deadline
// allows.
func (r *Releaser) Pass(ctx context.Context, req importmsg.Release) (Result, error) {
	var res Result
	rt, ok := r.cfg.Routes.LookupFresh(ctx, req.Route)
	if !ok {
		r.log.WarnContext(ctx, "release: a release request for a route that is not configured; the sweep files its files", "route", req.Route)
		return res, nil
	}
	log := r.log.With("route", rt.Name)
	// Files whose notification led to the request were stored before the
	// request's second ended.
	// A request from the future (a skewed clock, a hand-made message) counts
	// as made now.
	at := req.RequestedAt
	if now := r.now(); at.After(now) {
		at = now
	}
	notBefore := at.Truncate(time.Second).Add(time.Second + skewMargin)
	for {
		if err := r.waitUntil(ctx, notBefore); err != nil {
			return res, r.handOver(ctx, log, rt, res, err)
		}
		// Read after each wait: a pause made while the pass waited for
		// files to settle holds what it has not sent.
		p, err := pause.Get(ctx, r.s3, r.cfg.Bucket, r.cfg.Layout, rt.Name)
		if err != nil {
			return res, err
		}
		if p != nil {
			res.Paused = true
			log.InfoContext(ctx, "release: the route is paused; its files wait in inbound/, in order", "pausedAt", p.At, "by", p.By, "reason", p.Reason)
			return res, nil
		}
		files, err := r.list(ctx, rt)
		res.Lists++
		if err != nil {
			return res, err
		}
		res.Listed = len(files)
		n, next, err := r.releaseSettled(ctx, log, rt, files, &res)
		if errors.Is(err, errNoTime) {
			return res, r.handOver(ctx, log, rt, res, err)
		}
		if err != nil {
			return res, err
		}
		if next.IsZero() {
			log.InfoContext(ctx, "release: pass done", "result", res)
			return res, nil
		}
		if n > 0 {
			return res, r.handOver(ctx, log, rt, res, nil)
		}
		notBefore = next
	}
}

// handOver sends a follow-up request for the files left waiting (still
// settling, or not sent for lack of time).
func (r *Releaser) handOver(ctx context.Context, log *slog.Logger, rt routes.Route, res Result, why error) error {
	if err := r.Request(ctx, rt, true); err != nil {
		return err
	}
	args := []any{"result", res}
	if why != nil {
		args = append(args, "reason", why.Error())
	}
	log.InfoContext(ctx, "release: files still waiting; a follow-up pass takes them", args...)
	return nil
}

// outOfTime reports whether less than reserve is left before ctx's
// deadline: a pass with many files to send hands the rest over then.
func (r *Releaser) outOfTime(ctx context.Context) bool {
	dl, ok := ctx.Deadline()
	return ok && time.Until(dl) < reserve
}

// waitUntil sleeps until t, unless that would leave less than reserve
// before ctx's deadline.
func (r *Releaser) waitUntil(ctx context.Context, t time.Time) error {
	d := t.Sub(r.now())
	if d <= 0 {
		return nil
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d+reserve {
		return errNoTime
	}
	return r.sleep(ctx, d)
}

// file is one version of a route's folder.
type file struct {
	s3io.Version
	identity string
	released bool
}

// list is the route's files in inbound/, in the route's order, each marked
// released or not.
func (r *Releaser) list(ctx context.Context, rt routes.Route) ([]file, error) {
	prefix := r.cfg.Layout.Inbound + rt.Name + "/"
	versions, err := s3io.ListVersions(ctx, r.s3, r.cfg.Bucket, prefix, func(raw string, err error) {
		r.log.ErrorContext(ctx, "release: a key in the listing cannot be decoded; it is left alone", "rawKey", raw, "error", err.Error())
	})
	if err != nil {
		return nil, err
	}
	released, err := r.releasedIDs(ctx, rt)
	if err != nil {
		return nil, err
	}
	files := make([]file, 0, len(versions))
	for _, v := range versions {
		if strings.HasSuffix(v.Key, "/") || strings.HasSuffix(v.Key, layout.StuckSuffix) {
			continue
		}
		id := importmsg.Identity(r.cfg.Bucket, v.Key, v.VersionID, v.ETag)
		files = append(files, file{Version: v, identity: id, released: released[id]})
	}
	slices.SortFunc(files, func(a, b file) int { return compare(rt.Order, a.Version, b.Version) })
	return files, nil
}

// compare orders two files by the route's rule. Last-Modified has one
// second's resolution, so ties are broken by key; versions of one key go
// oldest first.
func compare(o routes.Order, a, b s3io.Version) int {
	at, bt := a.LastModified.Truncate(time.Second), b.LastModified.Truncate(time.Second)
	if o == routes.OrderName {
		return cmp.Or(strings.Compare(a.Key, b.Key), at.Compare(bt), a.LastModified.Compare(b.LastModified), strings.Compare(a.VersionID, b.VersionID))
	}
	return cmp.Or(at.Compare(bt), strings.Compare(a.Key, b.Key), a.LastModified.Compare(b.LastModified), strings.Compare(a.VersionID, b.VersionID))
}

// settledAt is when a file may be released: the route's settle window after
// the end of the second S3 stored it in.
func settledAt(rt routes.Route, v s3io.Version) time.Time {
	return v.LastModified.Truncate(time.Second).Add(time.Second + rt.Settle)
}

// releasedIDs lists the identities with a released marker in the route.
func (r *Releaser) releasedIDs(ctx context.Context, rt routes.Route) (map[string]bool, error) {
	prefix := r.cfg.Layout.ReleasedPrefix(rt.Name)
	ids := map[string]bool{}
	p := s3.NewListObjectsV2Paginator(r.s3, &s3.ListObjectsV2Input{Bucket: &r.cfg.Bucket, Prefix: &prefix})
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", prefix, err)
		}
		for _, o := range out.Contents {
			if id, ok := strings.CutSuffix(strings.TrimPrefix(aws.ToString(o.Key), prefix), ".json"); ok && !strings.Contains(id, "/") {
				ids[id] = true
			}
		}
	}
	return ids, nil
}

// releaseSettled sends the route's unreleased files in order, up to the
// first that has not settled (whose settle time it returns; zero when none
// is left waiting). Empty files are filed under rejected/ on the way.
func (r *Releaser) releaseSettled(ctx context.Context, log *slog.Logger, rt routes.Route, files []file, res *Result) (int, time.Time, error) {
	if rt.Kind == routes.KindDataProject {
		return r.releasePackage(ctx, log, rt, files, res)
	}
	now := r.now()
	var newest *s3io.Version // the youngest file already released
	for i := range files {
		if files[i].released {
			newest = &files[i].Version
		}
	}
	var batch []file
	var next time.Time
	for _, f := range files {
		if f.released {
			continue
		}
		if at := settledAt(rt, f.Version); at.After(now) {
			if next.IsZero() {
				next = at
			}
			res.Waiting++
			continue
		}
		if !next.IsZero() {
			// An older file is still settling: this one waits behind it.
			res.Waiting++
			continue
		}
		if f.Size == 0 {
			if err := r.rejectEmpty(ctx, rt, f); err != nil {
				return 0, time.Time{}, err
			}
			res.Rejected++
			continue
		}
		if newest != nil && compare(rt.Order, f.Version, *newest) < 0 {
			res.Late++
			log.WarnContext(ctx, "release: a file became visible after a younger one was released (its upload took longer than the settle window); it goes now",
				"key", f.Key, "versionId", f.VersionID, "lastModified", f.LastModified, "youngerReleased", newest.Key, "settle", rt.Settle.String())
		}
		batch = append(batch, f)
	}
	for start := 0; start < len(batch); start += 10 {
		sent, err := r.sendFiles(ctx, log, rt, batch[start:min(start+10, len(batch))], start > 0)
		res.Released += sent
		if errors.Is(err, errNoTime) {
			res.Waiting += len(batch) - start - sent
		}
		if err != nil {
			return res.Released, time.Time{}, err
		}
	}
	return len(batch), next, nil
}

// sendFiles sends up to ten files, in order, each in a request of its own,
// and writes the released markers of those sent, together. It returns how
// many were sent; a file that was not ends the pass there (a later pass
// sends it), so nothing behind it is sent before it. One request per file
// because SQS may refuse one entry of a batch and take the next: in a FIFO
// group that later file would then be ahead of the refused one for good.
// With less than reserve left before the deadline it stops (errNoTime),
// unless this is the pass's first send (sentBefore false): a pass always
// sends one file.
func (r *Releaser) sendFiles(ctx context.Context, log *slog.Logger, rt routes.Route, files []file, sentBefore bool) (int, error) {
	var g errgroup.Group
	g.SetLimit(markerConcurrency)
	defer g.Wait() // the writes log their failures and return none
	at := r.now().UTC()
	for i, f := range files {
		if (sentBefore || i > 0) && r.outOfTime(ctx) {
			return i, errNoTime
		}
		m := importmsg.File{Bucket: r.cfg.Bucket, Key: f.Key, VersionID: f.VersionID, ETag: f.ETag, Size: f.Size,
			Route: rt.Name, EventTime: f.LastModified}
		body, err := json.Marshal(m)
		if err != nil {
			return i, fmt.Errorf("encode message for %s: %w", f.Key, err)
		}
		entry := sqstypes.SendMessageBatchRequestEntry{MessageBody: aws.String(string(body)),
			MessageGroupId: aws.String(rt.GroupID()), MessageDeduplicationId: aws.String(importmsg.DedupID(m))}
		if err := r.send(ctx, []sqstypes.SendMessageBatchRequestEntry{entry})[0]; err != nil {
			return i, fmt.Errorf("release %s: %w", f.Key, err)
		}
		r.cfg.Observers.Metrics.Add("FilesRouted", 1, metrics.Route, rt.Name)
		log.InfoContext(ctx, "release: sent to the import queue", "key", f.Key, "versionId", f.VersionID, "identity", f.identity,
			"lastModified", f.LastModified, "group", rt.GroupID())
		doc := Released{Key: f.Key, VersionID: f.VersionID, DedupID: importmsg.DedupID(m), ReleasedAt: at}
		g.Go(func() error {
			// A marker not written costs at most a second send, which the
			// deduplication ID or the idempotency marker absorbs.
			if err := s3io.PutJSON(ctx, r.s3, r.cfg.Bucket, r.cfg.Layout.ReleasedKey(rt.Name, f.identity), doc); err != nil {
				log.WarnContext(ctx, "release: released marker not written", "key", f.Key, "identity", f.identity, "error", err.Error())
			}
			return nil
		})
	}
	return len(files), nil
}

// rejectEmpty files an empty file under rejected/: there is nothing to
// import.
func (r *Releaser) rejectEmpty(ctx context.Context, rt routes.Route, f file) error {
	_, name, _ := r.cfg.Layout.Split(f.Key)
	return filing.Reject(ctx, r.s3, r.cfg.Layout, r.now, r.log, r.cfg.Observers, filing.Rejection{
		Src:   s3io.Ref{Bucket: r.cfg.Bucket, Key: f.Key, VersionID: f.VersionID, ETag: f.ETag},
		Route: rt.Name, File: name, EventTime: f.LastModified, Code: "empty-file",
		Detail: "the file is empty (0 bytes): there is nothing to import"})
}
