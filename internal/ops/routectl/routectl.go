// Package routectl pauses and resumes routes for the operator: a pause
// holds a route's files in inbound/, in order; a resume lifts it and asks
// for a release pass, which sends them in their original order.
package routectl

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/fno-bridge/s3-fno/internal/imports/pause"
	"github.com/fno-bridge/s3-fno/internal/imports/release"
	"github.com/fno-bridge/s3-fno/internal/shared/layout"
	"github.com/fno-bridge/s3-fno/internal/shared/routes"
	"github.com/fno-bridge/s3-fno/internal/shared/s3io"
)

// S3 is what pausing and resuming need.
type S3 interface {
	s3io.Getter
	s3io.Putter
	s3io.Deleter
	s3io.Lister
}

// Controller pauses and resumes the routes of one stack.
type Controller struct {
	S3       S3
	Bucket   string
	Layout   layout.Layout
	Routes   *routes.Table
	Releaser *release.Releaser // sends the release request on resume
}

// Result is what a pause or resume did.
type Result struct {
	Route   string        `json:"route"`
	Paused  bool          `json:"paused"`           // paused now
	Changed bool          `json:"changed"`          // this call paused or resumed it
	Marker  *pause.Marker `json:"marker,omitempty"` // the pause (in force, or lifted)
	Waiting int           `json:"waiting"`          // files in inbound/ for the route
	// NoPass: the resume could not ask for a release pass (resume again).
	NoPass bool `json:"noPass,omitempty"`
}

// Pause pauses a route; one already paused keeps its first reason.
func (c *Controller) Pause(ctx context.Context, route, by, reason string) (Result, error) {
	if _, ok := c.Routes.Lookup(route); !ok {
		return Result{}, c.unknown(route)
	}
	m := &pause.Marker{Route: route, By: by, Reason: reason, At: time.Now().UTC()}
	set, err := pause.Set(ctx, c.S3, c.Bucket, c.Layout, *m)
	if err != nil {
		return Result{}, err
	}
	if !set {
		// Paused already: by whom, since when and why is the marker's.
		if m, err = pause.Get(ctx, c.S3, c.Bucket, c.Layout, route); err != nil {
			return Result{}, err
		}
	}
	n, err := c.waiting(ctx, route)
	if err != nil {
		err = fmt.Errorf("the route is paused, but the files waiting could not be counted: %w", err)
	}
	return Result{Route: route, Paused: true, Changed: set, Marker: m, Waiting: n}, err
}

// Resume lifts a route's pause and asks for a release pass, which sends
// the files that waited in their order. Resuming a route that is not
// paused still asks for a pass (harmless, and it moves files a lost
// request left behind).
func (c *Controller) Resume(ctx context.Context, route string) (Result, error) {
	rt, ok := c.Routes.Lookup(route)
	if !ok {
		return Result{}, c.unknown(route)
	}
	m, err := pause.Get(ctx, c.S3, c.Bucket, c.Layout, route)
	if err != nil {
		return Result{}, err
	}
	if m != nil {
		if err := pause.Clear(ctx, c.S3, c.Bucket, c.Layout, route); err != nil {
			return Result{}, err
		}
	}
	// Sent as a follow-up is (a deduplication ID to the millisecond): a
	// request of the same second, already taken by a pass that found the
	// route paused, would otherwise make SQS drop this one as its duplicate.
	if err := c.Releaser.Request(ctx, rt, true); err != nil {
		return Result{Route: route, Changed: m != nil, Marker: m, NoPass: true}, fmt.Errorf("the pause is lifted, but no release pass was asked for (resume again): %w", err)
	}
	n, err := c.waiting(ctx, route)
	return Result{Route: route, Changed: m != nil, Marker: m, Waiting: n}, err
}

func (c *Controller) unknown(route string) error {
	return fmt.Errorf("route %q is not configured (configured: %s)", route, strings.Join(c.Routes.Names(), ", "))
}

// waiting counts the route's files in inbound/ (stuck reports aside).
func (c *Controller) waiting(ctx context.Context, route string) (int, error) {
	prefix := c.Layout.Inbound + route + "/"
	n := 0
	p := s3.NewListObjectsV2Paginator(c.S3, &s3.ListObjectsV2Input{Bucket: &c.Bucket, Prefix: &prefix})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return n, fmt.Errorf("count the files of route %q: %w", route, err)
		}
		for _, o := range page.Contents {
			if !strings.HasSuffix(aws.ToString(o.Key), layout.StuckSuffix) {
				n++
			}
		}
	}
	return n, nil
}
