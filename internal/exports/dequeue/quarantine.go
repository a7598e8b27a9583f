package dequeue

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/fno-bridge/s3-fno/internal/exports/unpack"
	"github.com/fno-bridge/s3-fno/internal/shared/layout"
	"github.com/fno-bridge/s3-fno/internal/shared/s3io"
)

// An export whose marker cannot be used (DamagedMarkerError: not JSON,
// trailing data, another export's marker, an unknown state, a key that is
// not where this export lands) would otherwise fail at every delivery and
// never be acknowledged, for ever. The marker key belongs to this one
// export (MarkerKey is a function of the job and the correlation ID, and
// nothing else reads it), so whatever lies there that cannot be acted on
// is this export's damaged state, even when it claims to be another
// export's marker: that export's own marker lives at its own key and is
// not touched. The document is copied to <STATE_PREFIX>quarantine/<its key
// under STATE_PREFIX> (kept for a person), and the export goes on as if it
// had no marker, except that an earlier landing is looked for first
// (findLanded), so it is recognised rather than landed a second time under
// another date. The new marker replaces the damaged one only if it is
// still the document that was read (If-Match).

// lookBackDays is how many days before today (UTC) findLanded looks for an
// earlier landing. F&O deletes an export's file after 7 days, so an export that can still be downloaded was first seen at most
// about that long ago; one day more covers a first sighting just before
// midnight UTC.
const lookBackDays = 8

// setAside quarantines the damaged marker dm of the export id names and looks for an
// earlier landing. It returns the marker written in dm's place for a
// landing it recognised, or nil and the ETag the reservation of a new
// landing must replace.
func (h *Handler) setAside(ctx context.Context, log *slog.Logger, in Input, id string, dm *DamagedMarkerError, r *FileResult) (*Marker, string, error) {
	q, err := h.quarantine(ctx, dm)
	if err != nil {
		return nil, "", fmt.Errorf("%v; could not move it to quarantine: %w", dm, err)
	}
	r.Quarantined = q
	days := h.searchDays(id, dm.Raw)
	found, err := h.findLanded(ctx, in, id, days)
	if err != nil {
		return nil, "", fmt.Errorf("%v; moved to %s; looking for an earlier landing: %w", dm, q, err)
	}
	attrs := []any{"marker", dm.Key, "quarantined", q, "reason", dm.Err.Error()}
	if found == nil {
		log.ErrorContext(ctx, "dequeue: marker unusable, moved to quarantine; no earlier landing of this export found, landing it as new "+
			"(a copy landed before the days searched, under another prefix, or since moved away would be a second copy)",
			append(attrs, "searched", fmt.Sprintf("%s{%s..%s}/%s-*", in.Prefix, days[0].Format("2006/01/02"),
				days[len(days)-1].Format("2006/01/02"), KeyID(id)))...)
		return nil, dm.ETag, nil
	}
	if err := h.putJSONIf(ctx, dm.Key, found, dm.ETag); err != nil {
		return nil, "", fmt.Errorf("%v; moved to %s; replace it: %w", dm, q, err)
	}
	log.ErrorContext(ctx, "dequeue: marker unusable, moved to quarantine; recognised the export's earlier landing", append(attrs, "key", found.Key)...)
	return found, "", nil
}

// quarantine copies the damaged marker to its quarantine key, or to the
// alternative tagged with the document's ETag when another document is
// there already (s3io.Place: a server-side copy pinned to the document
// read, and a copy made by an earlier, interrupted attempt is recognised
// by its identity). The marker itself stays until a new one replaces it.
func (h *Handler) quarantine(ctx context.Context, dm *DamagedMarkerError) (string, error) {
	id := s3io.NormalizeETag(dm.ETag)
	if id == "" { // S3 always sends one; a stand-in may not
		sum := sha256.Sum256(dm.Raw)
		id = hex.EncodeToString(sum[:8])
	}
	src := s3io.Ref{Bucket: h.cfg.Bucket, Key: dm.Key, ETag: s3io.NormalizeETag(dm.ETag)}
	return s3io.Place(ctx, h.s3, src, s3io.Candidates(layout.Layout{State: h.cfg.StatePrefix}.QuarantineKey(dm.Key), id), id, nil)
}

// searchDays are the dates, oldest first, under which findLanded looks:
// the last lookBackDays days and today, preceded by the day the damaged
// marker says the export was first seen, if it says so for this
// correlation ID (only a hint: what is found there is checked).
func (h *Handler) searchDays(correlationID string, raw []byte) []time.Time {
	today := h.cfg.Now().UTC().Truncate(24 * time.Hour)
	first := today.AddDate(0, 0, -lookBackDays)
	var days []time.Time
	var hint Marker
	if json.NewDecoder(bytes.NewReader(raw)).Decode(&hint) == nil && hint.CorrelationID == correlationID {
		if day := hint.FirstSeen.UTC().Truncate(24 * time.Hour); day.Before(first) && !hint.FirstSeen.IsZero() {
			days = append(days, day)
		}
	}
	for day := first; !day.After(today); day = day.AddDate(0, 0, 1) {
		days = append(days, day)
	}
	return days
}

// findLanded looks for this export already landed under the job's prefix
// on one of days: an object at <prefix><yyyy>/<mm>/<dd>/<id>-<name> whose
// metadata names the correlation ID (entity files beside a package are
// one level deeper and not taken). It returns the landed marker of the
// first found, or nil.
func (h *Handler) findLanded(ctx context.Context, in Input, correlationID string, days []time.Time) (*Marker, error) {
	markerKey := h.MarkerKey(in.Job, correlationID)
	for _, day := range days {
		prefix := in.Prefix + day.Format("2006/01/02/") + KeyID(correlationID) + "-"
		p := s3.NewListObjectsV2Paginator(h.s3, &s3.ListObjectsV2Input{Bucket: &h.cfg.Bucket, Prefix: &prefix, Delimiter: aws.String("/")})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				return nil, fmt.Errorf("list %s: %w", prefix, err)
			}
			for _, o := range page.Contents {
				key := aws.ToString(o.Key)
				head, err := h.headObject(ctx, key)
				if err != nil {
					return nil, err
				}
				if head == nil || head.Metadata[idMeta(in)] != unpack.MetaValue(correlationID) {
					continue
				}
				firstSeen := day
				if lm := aws.ToTime(head.LastModified).UTC(); lm.Truncate(24 * time.Hour).Equal(day) {
					firstSeen = lm
				}
				m := &Marker{
					Job: in.Job, ActivityID: in.ActivityID, CorrelationID: correlationID, Key: key, State: StateLanded,
					FirstSeen: firstSeen, LandedAt: h.cfg.Now().UTC(), Size: aws.ToInt64(head.ContentLength),
					ETag: aws.ToString(head.ETag), VersionID: aws.ToString(head.VersionId),
				}
				// Only a key the dequeue function would have written (and will
				// accept when it reads the marker back) is taken.
				if b, err := json.Marshal(m); err != nil {
					return nil, err
				} else if _, err := h.DecodeMarker(bytes.NewReader(b), markerKey); err != nil {
					continue
				}
				return m, nil
			}
		}
	}
	return nil, nil
}
