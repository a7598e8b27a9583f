// Package pause holds a route's files back: while a route is paused its
// release passes release nothing, so its files wait in inbound/ (never lost,
// never reordered, never counted toward the dead-letter queue), and on
// resume the next pass sends them in their order. A pause is a marker
// under _state/paused/: set by a person (the operator's tool) or, for a
// route that asks for it, by the failure of one of its files.
package pause

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/fno-bridge/s3-fno/internal/shared/layout"
	"github.com/fno-bridge/s3-fno/internal/shared/routes"
	"github.com/fno-bridge/s3-fno/internal/shared/s3io"
)

// Marker is _state/paused/<route>.json.
type Marker struct {
	Route  string    `json:"route"`
	At     time.Time `json:"pausedAt"`
	By     string    `json:"by"`     // who: a person's name, or "on failure"
	Reason string    `json:"reason"` // why, for the status view
	File   string    `json:"file,omitempty"`
}

// OnFailure is the By of a pause the failure of a file set.
const OnFailure = "on failure"

// Get returns the route's pause, or nil when it is not paused.
func Get(ctx context.Context, c s3io.Getter, bucket string, l layout.Layout, route string) (*Marker, error) {
	var m Marker
	found, err := s3io.GetJSON(ctx, c, bucket, l.PausedKey(route), &m)
	if err != nil {
		return nil, fmt.Errorf("read the pause of route %q: %w", route, err)
	}
	if !found {
		return nil, nil
	}
	if m.Route == "" {
		m.Route = route
	}
	return &m, nil
}

// Set pauses a route. A route already paused stays paused as it was
// (the first reason is the one to read); set reports whether this call
// paused it.
func Set(ctx context.Context, c s3io.Putter, bucket string, l layout.Layout, m Marker) (set bool, err error) {
	if m.At.IsZero() {
		m.At = time.Now().UTC()
	}
	set, err = s3io.PutJSONIfAbsent(ctx, c, bucket, l.PausedKey(m.Route), m)
	if err != nil {
		return false, fmt.Errorf("pause route %q: %w", m.Route, err)
	}
	return set, nil
}

// Clear resumes a route (its files wait for the next release pass, which
// the caller asks for).
func Clear(ctx context.Context, c s3io.Deleter, bucket string, l layout.Layout, route string) error {
	if err := s3io.DeleteKey(ctx, c, bucket, l.PausedKey(route)); err != nil {
		return fmt.Errorf("resume route %q: %w", route, err)
	}
	return nil
}

// Lister is what List needs.
type Lister interface {
	s3io.Lister
	s3io.Getter
}

// List returns every paused route's marker: one listing, and one read per
// paused route.
func List(ctx context.Context, c Lister, bucket string, l layout.Layout) (map[string]Marker, error) {
	prefix := l.PausedPrefix()
	out := map[string]Marker{}
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: &bucket, Prefix: &prefix})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list the paused routes: %w", err)
		}
		for _, o := range page.Contents {
			route, ok := strings.CutSuffix(strings.TrimPrefix(aws.ToString(o.Key), prefix), ".json")
			if !ok || route == "" {
				continue
			}
			m, err := Get(ctx, c, bucket, l, route)
			if err != nil {
				return nil, err
			}
			if m != nil {
				out[route] = *m
			}
		}
	}
	return out, nil
}

// OnFailureOf is an import function's filing.Observers.Pause: it pauses a
// route whose configuration asks for it (pauseOnFailure) when one of its
// files fails. A pause that cannot be written is logged; filing goes on.
func OnFailureOf(tbl *routes.Table, c s3io.Putter, bucket string, l layout.Layout, log *slog.Logger) func(ctx context.Context, route, file, reason string) bool {
	return func(ctx context.Context, route, file, reason string) bool {
		rt, ok := tbl.Lookup(route)
		if !ok || !rt.PauseOnFailure {
			return false
		}
		_, err := Set(ctx, c, bucket, l, Marker{Route: route, By: OnFailure, Reason: file + " failed: " + reason, File: file})
		if err != nil {
			log.ErrorContext(ctx, "pause: the route asks to be paused on failure, and could not be", "route", route, "key", file, "error", err.Error())
			return false
		}
		log.WarnContext(ctx, "pause: route paused after a file failed; its later files wait", "route", route, "key", file, "reason", reason)
		return true
	}
}
