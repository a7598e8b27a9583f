// Package status is the operator's view of a stack: per route, the files
// waiting and in flight, the oldest, F&O's statuses and whether it is
// paused; per export job, its schedule, last run, last landing and next
// run. It reads summaries, never record by record: the configuration, the
// poller's status board, listings of the released markers, inbound/, the
// pauses and the jobs' run records. Ten thousand imports in flight cost
// about thirty requests.
package status

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/fno-bridge/s3-fno/internal/imports/ledger"
	"github.com/fno-bridge/s3-fno/internal/imports/pause"
	"github.com/fno-bridge/s3-fno/internal/shared/config"
	"github.com/fno-bridge/s3-fno/internal/shared/layout"
	"github.com/fno-bridge/s3-fno/internal/shared/s3io"
)

// S3 is what the view reads with.
type S3 interface {
	s3io.Getter
	s3io.Lister
	s3io.Putter
	s3io.Deleter
}

// Viewer builds the view of one stack.
type Viewer struct {
	S3     S3
	Bucket string
	Layout layout.Layout
	Doc    *config.Document // the configuration in force
	Now    func() time.Time
}

// Report is the view.
type Report struct {
	At             time.Time   `json:"at"`
	BoardUpdatedAt time.Time   `json:"boardUpdatedAt,omitzero"`
	Routes         []RouteView `json:"routes"`
	Jobs           []JobView   `json:"jobs"`
}

// RouteView is one route.
type RouteView struct {
	Route    string         `json:"route"`
	Entity   string         `json:"entity,omitempty"`
	Paused   *pause.Marker  `json:"paused,omitempty"`
	Waiting  int            `json:"waiting"`  // in inbound/, not released yet
	InFlight int            `json:"inFlight"` // released, not filed yet
	Oldest   time.Time      `json:"oldest,omitzero"`
	Statuses map[string]int `json:"statuses"` // F&O's last status of the imports in flight ("not checked yet" for new ones)
	Stuck    int            `json:"stuck"`
}

// JobView is one export job.
type JobView struct {
	Job         string    `json:"job"`
	Schedule    string    `json:"schedule"`
	Timezone    string    `json:"timezone"`
	Enabled     bool      `json:"enabled"`
	LastRun     time.Time `json:"lastRun,omitzero"`
	LastLanding time.Time `json:"lastLanding,omitzero"`
	NextRun     time.Time `json:"nextRun,omitzero"`
	// Execution is, for a job of kind dataProject, the last execution its
	// last run followed or started (outcome "in-flight" while F&O runs it).
	Execution *JobExecution `json:"execution,omitempty"`
}

// JobExecution is a dataProject job's execution as its last run left it.
type JobExecution struct {
	ExecutionID string    `json:"executionId"`
	StartedAt   time.Time `json:"startedAt"`
	Status      string    `json:"status,omitempty"`
	Outcome     string    `json:"outcome"`
	Key         string    `json:"key,omitempty"`
	// ResultKey is its result document, when F&O ended it with errors.
	ResultKey string `json:"resultKey,omitempty"`
}

// NotChecked is the status of an import released but not checked yet.
const NotChecked = "not checked yet"

// View builds the report.
func (v *Viewer) View(ctx context.Context) (Report, error) {
	now := time.Now
	if v.Now != nil {
		now = v.Now
	}
	rep := Report{At: now().UTC(), Routes: []RouteView{}, Jobs: []JobView{}}
	byRoute := map[string]*RouteView{}
	for _, r := range v.Doc.Routes.All() {
		rep.Routes = append(rep.Routes, RouteView{Route: r.Name, Entity: r.Entity, Statuses: map[string]int{}})
	}
	for i := range rep.Routes {
		byRoute[rep.Routes[i].Route] = &rep.Routes[i]
	}
	paused, err := pause.List(ctx, v.S3, v.Bucket, v.Layout)
	if err != nil {
		return rep, err
	}
	for route, m := range paused {
		if rv := byRoute[route]; rv != nil {
			rv.Paused = &m
		}
	}
	released, err := v.released(ctx)
	if err != nil {
		return rep, err
	}
	board, err := (&ledger.Store{S3: v.S3, Bucket: v.Bucket, Layout: v.Layout}).ReadBoard(ctx)
	if err != nil {
		return rep, fmt.Errorf("read the status board: %w", err)
	}
	rep.BoardUpdatedAt = board.UpdatedAt
	for id, rel := range released {
		rv := byRoute[rel.route]
		if rv == nil {
			continue
		}
		rv.InFlight++
		if rv.Oldest.IsZero() || rel.at.Before(rv.Oldest) {
			rv.Oldest = rel.at
		}
		e, ok := board.Imports[id]
		status := cmp.Or(e.Status, NotChecked)
		if !ok {
			status = NotChecked
		}
		rv.Statuses[status]++
		if e.Stuck {
			rv.Stuck++
		}
	}
	if err := v.inbound(ctx, byRoute); err != nil {
		return rep, err
	}
	rep.Jobs, err = v.jobs(ctx, rep.At)
	return rep, err
}

type releasedFile struct {
	route string
	at    time.Time
}

// released lists the released markers: the imports in flight, by identity.
func (v *Viewer) released(ctx context.Context) (map[string]releasedFile, error) {
	root := v.Layout.ReleasedRoot()
	out := map[string]releasedFile{}
	err := v.list(ctx, root, func(key string, at time.Time) {
		route, id, ok := strings.Cut(strings.TrimPrefix(key, root), "/")
		if ok {
			out[strings.TrimSuffix(id, ".json")] = releasedFile{route: route, at: at}
		}
	})
	return out, err
}

// inbound counts each route's files not released yet: those in inbound/
// less those in flight.
func (v *Viewer) inbound(ctx context.Context, byRoute map[string]*RouteView) error {
	count := map[string]int{}
	err := v.list(ctx, v.Layout.Inbound, func(key string, _ time.Time) {
		if strings.HasSuffix(key, layout.StuckSuffix) || strings.HasSuffix(key, "/") {
			return
		}
		if route, _, ok := v.Layout.Split(key); ok {
			count[route]++
		}
	})
	for route, n := range count {
		if rv := byRoute[route]; rv != nil {
			rv.Waiting = max(n-rv.InFlight, 0)
		}
	}
	return err
}

// jobs reads every job's last run and last landing from one listing.
func (v *Viewer) jobs(ctx context.Context, now time.Time) ([]JobView, error) {
	root := v.Layout.JobStatusPrefix()
	last := map[string]map[string]time.Time{}
	err := v.list(ctx, root, func(key string, at time.Time) {
		job, file, ok := strings.Cut(strings.TrimPrefix(key, root), "/")
		if !ok {
			return
		}
		if last[job] == nil {
			last[job] = map[string]time.Time{}
		}
		last[job][file] = at
	})
	var out []JobView
	for _, j := range v.Doc.Jobs {
		jv := JobView{Job: j.Name, Schedule: j.Schedule, Timezone: j.Timezone, Enabled: j.Enabled,
			LastRun: last[j.Name]["last-run.json"], LastLanding: last[j.Name]["last-landing.json"]}
		if j.Enabled {
			jv.NextRun = NextRun(j.Schedule, j.Timezone, now, jv.LastRun)
		}
		if !jv.LastRun.IsZero() && isPackageJob(j.Input) {
			jv.Execution = v.lastExecution(ctx, root+j.Name+"/last-run.json")
		}
		out = append(out, jv)
	}
	slices.SortFunc(out, func(a, b JobView) int { return strings.Compare(a.Job, b.Job) })
	if out == nil {
		out = []JobView{}
	}
	return out, err
}

// isPackageJob: the job's input is of kind dataProject.
func isPackageJob(input []byte) bool {
	var in struct{ Kind string }
	return json.Unmarshal(input, &in) == nil && strings.EqualFold(strings.TrimSpace(in.Kind), "dataProject")
}

// lastExecution reads the last execution from a dataProject job's run
// record (one GET per such job); nil when there is none or it cannot be
// read.
func (v *Viewer) lastExecution(ctx context.Context, key string) *JobExecution {
	var rec struct {
		Summary struct {
			Executions []JobExecution `json:"executions"`
		} `json:"summary"`
	}
	if found, err := s3io.GetJSON(ctx, v.S3, v.Bucket, key, &rec); !found || err != nil || len(rec.Summary.Executions) == 0 {
		return nil
	}
	return &rec.Summary.Executions[len(rec.Summary.Executions)-1]
}

// list calls fn with every key under prefix and its time.
func (v *Viewer) list(ctx context.Context, prefix string, fn func(key string, at time.Time)) error {
	p := s3.NewListObjectsV2Paginator(v.S3, &s3.ListObjectsV2Input{Bucket: &v.Bucket, Prefix: &prefix})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("list %s: %w", prefix, err)
		}
		for _, o := range page.Contents {
			fn(aws.ToString(o.Key), aws.ToTime(o.LastModified))
		}
	}
	return nil
}
