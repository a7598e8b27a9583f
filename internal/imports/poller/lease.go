package poller

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/fno-bridge/s3-fno/internal/shared/s3io"
)

// The poller lease (_state/poller-lease.json) keeps two runs from
// overlapping: the request budget is kept per execution environment, so
// two runs at the same time in two environments (a duplicate schedule
// delivery, a manual invoke, a schedule more frequent than a run is long)
// would each spend a full budget against the one OData allowance.
//
// A run takes the lease before anything else, with a conditional write:
// If-None-Match: * first, without reading (there is none, usually); when
// one is there, it reads it and writes If-Match: <its ETag> to take over
// one that has expired (by its own expires field, not LastModified) or that
// is not a lease document at all. Of two runs racing, S3 lets exactly one
// write succeed; the other sees 412 (or 409, a conflicting conditional
// write in progress), reads the lease again and finds it held. A lease
// lasts until the invocation's deadline plus leaseSlack, so a run that dies
// without releasing it blocks the next runs for at most one run's length.
// At the end the run releases it by deleting it with If-Match on the ETag
// it wrote: a lease another run has taken over since is never removed.
type leaseDoc struct {
	// Holder is a random ID of the run that holds it (for people, and so
	// two leases never have the same ETag).
	Holder     string    `json:"holder"`
	AcquiredAt time.Time `json:"acquiredAt"`
	// Expires is the run's deadline plus leaseSlack, on the poller's clock.
	Expires time.Time `json:"expires"`
}

const (
	// leaseSlack is added to the invocation's deadline.
	leaseSlack = 10 * time.Second
	// leaseWithoutDeadline is the length of a lease taken by a run with no
	// deadline (tests, local tools): Lambda's longest timeout.
	leaseWithoutDeadline = 15 * time.Minute
	// leaseMostAhead: no run holds a lease for longer. A lease that expires
	// further ahead than this (a clock gone wrong, a hand-written document)
	// is taken for broken rather than blocking the poller until then.
	leaseMostAhead = leaseWithoutDeadline + leaseSlack
	// leaseReleaseTimeout bounds the release, on its own context.
	leaseReleaseTimeout = 5 * time.Second
	// leaseTries is how often a run reads and writes the lease before it
	// gives up because the lease keeps changing hands.
	leaseTries = 3
	// leaseMaxBytes bounds the lease document read (ours is ~150 bytes).
	leaseMaxBytes = 64 << 10
)

// heldLease is the lease this run wrote.
type heldLease struct {
	key  string
	etag string
	doc  leaseDoc
}

// held reports whether the lease still keeps other runs out at now.
func (d leaseDoc) held(now time.Time) bool {
	return now.Before(d.Expires) && d.Expires.Sub(now) <= leaseMostAhead
}

// takeLease takes the poller lease for a run that ends by deadline (zero:
// no deadline). It returns the lease it holds, or, when another run holds
// it, that run's lease; err when S3 could not be asked.
func (p *Poller) takeLease(ctx context.Context, deadline time.Time) (*heldLease, *leaseDoc, error) {
	key := p.cfg.Layout.PollerLeaseKey()
	now := p.cfg.Now().UTC()
	length := leaseWithoutDeadline
	if !deadline.IsZero() {
		length = max(time.Until(deadline), 0) + leaseSlack
	}
	mine := leaseDoc{Holder: newHolderID(), AcquiredAt: now, Expires: now.Add(length)}
	// Most runs find no lease (the run before released it): write first,
	// and read only when there is one.
	etag, err := p.putLease(ctx, key, mine, &s3.PutObjectInput{IfNoneMatch: aws.String("*")})
	if err == nil {
		return &heldLease{key: key, etag: etag, doc: mine}, nil, nil
	}
	if !lostLeaseRace(err) {
		return nil, nil, err
	}
	for range leaseTries {
		cur, etag, found, err := p.readLease(ctx, key)
		if err != nil {
			return nil, nil, err
		}
		in := &s3.PutObjectInput{}
		switch {
		case !found:
			in.IfNoneMatch = aws.String("*")
		case cur != nil && cur.held(now):
			return nil, cur, nil
		default:
			if cur == nil {
				p.log.WarnContext(ctx, "poller: the lease document is not a lease; taking it over", "leaseKey", key)
			} else if now.Before(cur.Expires) {
				p.log.WarnContext(ctx, "poller: the lease expires implausibly far ahead; taking it over", "leaseKey", key,
					"expires", cur.Expires, "holder", cur.Holder)
			}
			in.IfMatch = aws.String(etag)
		}
		etag, err = p.putLease(ctx, key, mine, in)
		if err == nil {
			return &heldLease{key: key, etag: etag, doc: mine}, nil, nil
		}
		if !lostLeaseRace(err) {
			return nil, nil, err
		}
		// Another run wrote (or deleted) it in between: look again.
	}
	return nil, nil, fmt.Errorf("lease s3://%s/%s changed hands %d times while this run tried to take it", p.cfg.Bucket, key, leaseTries)
}

// readLease reads the lease. cur is nil when the object is not a lease
// document (it is then taken over like an expired one).
func (p *Poller) readLease(ctx context.Context, key string) (cur *leaseDoc, etag string, found bool, err error) {
	out, err := p.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: &p.cfg.Bucket, Key: &key})
	if s3io.IsNotFound(err) {
		return nil, "", false, nil
	}
	if err != nil {
		return nil, "", false, fmt.Errorf("read the lease s3://%s/%s: %w", p.cfg.Bucket, key, err)
	}
	defer out.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(out.Body, leaseMaxBytes+1))
	if err != nil {
		return nil, "", false, fmt.Errorf("read the lease s3://%s/%s: %w", p.cfg.Bucket, key, err)
	}
	etag = aws.ToString(out.ETag)
	var d leaseDoc
	if len(raw) > leaseMaxBytes || json.Unmarshal(raw, &d) != nil {
		return nil, etag, true, nil
	}
	return &d, etag, true, nil
}

// putLease writes d under the condition in in and returns the new ETag.
func (p *Poller) putLease(ctx context.Context, key string, d leaseDoc, in *s3.PutObjectInput) (string, error) {
	b, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return "", fmt.Errorf("encode the lease: %w", err)
	}
	in.Bucket, in.Key, in.Body = &p.cfg.Bucket, &key, bytes.NewReader(b)
	in.ContentLength, in.ContentType = aws.Int64(int64(len(b))), aws.String("application/json")
	out, err := p.s3.PutObject(ctx, in)
	if err != nil {
		return "", fmt.Errorf("write the lease s3://%s/%s: %w", p.cfg.Bucket, key, err)
	}
	return aws.ToString(out.ETag), nil
}

// releaseLease deletes the lease if it is still the one this run wrote, on
// a context of its own (the run's may have ended). A lease that cannot be
// released expires by itself.
func (p *Poller) releaseLease(ctx context.Context, l *heldLease) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), leaseReleaseTimeout)
	defer cancel()
	_, err := p.s3.DeleteObject(rctx, &s3.DeleteObjectInput{Bucket: &p.cfg.Bucket, Key: &l.key, IfMatch: aws.String(l.etag)})
	switch {
	case err == nil:
	case lostLeaseRace(err):
		p.log.WarnContext(ctx, "poller: the lease was taken over by another run before this one released it", "leaseKey", l.key,
			"expires", l.doc.Expires)
	default:
		p.log.WarnContext(ctx, "poller: the lease was not released; it expires by itself", "leaseKey", l.key,
			"expires", l.doc.Expires, "error", err.Error())
	}
}

// lostLeaseRace: a conditional write or delete of the lease found it
// changed (412), gone (404 on If-Match) or being written by another run
// (409 ConditionalRequestConflict).
func lostLeaseRace(err error) bool {
	return s3io.IsPreconditionFailed(err) || s3io.IsNotFound(err) || s3io.IsConflict(err)
}

func newHolderID() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}
