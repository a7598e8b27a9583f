package poller

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/fno-bridge/s3-fno/internal/imports/importmsg"
	"github.com/fno-bridge/s3-fno/internal/imports/ledger"
	"github.com/fno-bridge/s3-fno/internal/imports/release"
	"github.com/fno-bridge/s3-fno/internal/shared/layout"
	"github.com/fno-bridge/s3-fno/internal/shared/s3io"
)

// sweepState is _state/sweep.json.
type sweepState struct {
	LastSweep time.Time `json:"lastSweep"`
}

// sweep asks for a release of the routes of inbound files that no
// notification brought (or rejects them when no route takes them), and rebuilds
// ledger records lost between the marker and ledger writes.
func (p *Poller) sweep(ctx context.Context, s *Summary) {
	now := p.cfg.Now().UTC()
	stateKey := p.cfg.Layout.SweepStateKey()
	if p.cfg.SweepEvery > 0 {
		var st sweepState
		if _, err := s3io.GetJSON(ctx, p.s3, p.cfg.Bucket, stateKey, &st); err != nil {
			p.log.WarnContext(ctx, "sweep: cannot read its state; sweeping", "error", err.Error())
		} else if now.Sub(st.LastSweep) < p.cfg.SweepEvery && !st.LastSweep.After(now) {
			return
		}
	}
	cutoff := now.Add(-p.cfg.SweepAfter)
	old, err := p.oldInbound(ctx, cutoff, s)
	if err != nil {
		p.log.ErrorContext(ctx, "sweep: cannot list inbound files", "error", err.Error())
		s.Errors++
		return
	}
	if len(old) > 0 {
		p.sweepFiles(ctx, old, now, s)
	}
	if ctx.Err() == nil {
		if err := s3io.PutJSON(ctx, p.s3, p.cfg.Bucket, stateKey, sweepState{LastSweep: now}); err != nil {
			p.log.WarnContext(ctx, "sweep: state not written", "error", err.Error())
		}
	}
}

func (p *Poller) sweepFiles(ctx context.Context, old []release.Object, now time.Time, s *Summary) {
	markers, err := p.ledger.Markers(ctx)
	if err != nil {
		p.log.ErrorContext(ctx, "sweep: cannot list markers", "error", err.Error())
		s.Errors++
		return
	}
	routed, err := p.ledger.Released(ctx)
	if err != nil {
		p.log.ErrorContext(ctx, "sweep: cannot list released markers", "error", err.Error())
		s.Errors++
		return
	}
	inLedger, err := p.ledger.Identities(ctx)
	if err != nil {
		p.log.ErrorContext(ctx, "sweep: cannot list the ledger", "error", err.Error())
		s.Errors++
		return
	}
	var lost []release.Object
	held := p.heldPackages(ctx)
	for _, o := range old {
		id := importmsg.Identity(o.Bucket, o.Key, o.VersionID, o.ETag)
		// A notification without a versionId (moto's; an unversioned
		// bucket's) names the file by its ETag: such a file is known too.
		if byETag := importmsg.Identity(o.Bucket, o.Key, "", o.ETag); o.VersionID != "" && !markers[id] && !routed[id] && !inLedger[id] &&
			(markers[byETag] || routed[byETag] || inLedger[byETag]) {
			id = byETag
		}
		switch {
		case markers[id] && !inLedger[id]:
			// Enqueued, but the ledger record was never written.
			rec, res, err := p.rebuildRecord(ctx, id, now)
			switch {
			case err != nil:
				p.log.ErrorContext(ctx, "sweep: cannot rebuild a ledger record", "key", o.Key, "error", err.Error())
				s.Errors++
			case res == markerGone:
				// Finalized since the listing.
			case res == markerSending:
				// Being sent, or an attempt died while sending: the FIFO
				// message's redelivery files it (or it waits in the DLQ).
				s.Waiting++
				p.log.InfoContext(ctx, "sweep: an enqueue of this file started and recorded no answer yet", "key", o.Key,
					"since", rec.EnqueuedAt)
			default:
				s.Recovered++
				p.log.WarnContext(ctx, "sweep: rebuilt a lost ledger record from its marker", "key", o.Key, "messageId", rec.MessageID)
			}
		case markers[id]:
			// In flight in F&O: the poll follows it.
		case routed[id]:
			s.Waiting++
			p.log.InfoContext(ctx, "sweep: released but not enqueued yet (import queue backlog or its dead-letter queue)",
				"key", o.Key, "versionId", o.VersionID, "since", o.EventTime)
		case held(o, id):
			// A package waiting for its scope: the lock's release brings its pass.
			s.Held++
		default:
			lost = append(lost, o)
		}
	}
	if len(lost) == 0 {
		return
	}
	// The routes of lost files get a release request: the pass sends them
	// in the route's order, whatever order the listing gave.
	errs, outs := p.releaser.Notified(ctx, lost)
	for i, o := range lost {
		switch {
		case errs[i] != nil:
			s.Errors++
		case outs[i] == release.Skipped:
		default:
			s.Swept++
			p.log.WarnContext(ctx, "sweep: found a file that no notification brought", "key", o.Key, "versionId", o.VersionID,
				"lastModified", o.EventTime, "outcome", outcomeName(outs[i]))
		}
	}
}

func outcomeName(o release.Outcome) string {
	if o == release.Rejected {
		return "rejected"
	}
	return "release requested"
}

// rebuildResult is what rebuildRecord found.
type rebuildResult int

const (
	rebuilt       rebuildResult = iota // the record was written again
	markerGone                         // no marker: the file was finalized
	markerSending                      // the marker has no message ID yet: nothing to follow
)

// rebuildRecord writes the ledger record of identity id again from the
// file's idempotency marker (which holds the same facts), due at now. The
// sweep uses it for a record lost between the marker and ledger writes,
// the poll for a record it had to quarantine.
func (p *Poller) rebuildRecord(ctx context.Context, id string, now time.Time) (*ledger.Record, rebuildResult, error) {
	rec, found, err := p.ledger.GetMarker(ctx, id)
	if err != nil {
		return nil, 0, fmt.Errorf("read the marker: %w", err)
	}
	if !found {
		return nil, markerGone, nil
	}
	if rec.Sending() {
		return rec, markerSending, nil
	}
	rec.NextCheck = now
	if _, err := p.ledger.Put(ctx, *rec); err != nil {
		return rec, 0, fmt.Errorf("write the record: %w", err)
	}
	return rec, rebuilt, nil
}

// oldInbound lists the object versions under inbound/ last modified before
// cutoff, leaving out keys whose latest version is a delete marker, folder
// placeholders and stuck reports. A key that cannot be decoded is logged,
// counted in s.Errors and left out: it must not blind the sweep to the
// rest.
func (p *Poller) oldInbound(ctx context.Context, cutoff time.Time, s *Summary) ([]release.Object, error) {
	versions, err := s3io.ListVersions(ctx, p.s3, p.cfg.Bucket, p.cfg.Layout.Inbound, func(raw string, err error) {
		p.log.ErrorContext(ctx, "sweep: skipping a key the listing gave in a form that cannot be decoded", "rawKey", raw, "error", err.Error())
		s.Errors++
	})
	if err != nil {
		return nil, err
	}
	var out []release.Object
	for _, v := range versions {
		if !v.LastModified.Before(cutoff) || strings.HasSuffix(v.Key, "/") || strings.HasSuffix(v.Key, layout.StuckSuffix) {
			continue
		}
		out = append(out, release.Object{Bucket: p.cfg.Bucket, Key: v.Key, VersionID: v.VersionID, ETag: v.ETag, EventTime: v.LastModified})
	}
	return out, nil
}
