// Package configdoc is the operator's side of the configuration document:
// validate a document as the functions will, show what it changes, store
// it (only if nobody changed it meanwhile) and make the export jobs'
// EventBridge Scheduler schedules match it, one schedule per job in the
// stack's schedule group.
package configdoc

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/fno-bridge/s3-fno/internal/exports/dequeue"
	"github.com/fno-bridge/s3-fno/internal/shared/config"
	"github.com/fno-bridge/s3-fno/internal/shared/routes"
	"github.com/fno-bridge/s3-fno/internal/shared/s3io"
)

// S3 is what storing the document needs.
type S3 interface {
	s3io.Getter
	s3io.Putter
}

// Manager stores one stack's document and keeps its schedules.
type Manager struct {
	S3             S3
	Bucket, Key    string
	OutboundPrefix string // the dequeue function's OUTBOUND_PREFIX ("" is outbound/)
	Schedules      *Schedules
}

// versionLine starts the line `config show` prints above the document, so
// a file saved from it can be applied over that version only.
const versionLine = "# version "

// Shown is a document as `config show` prints it: its version's line, then
// the document.
func Shown(raw []byte, versionID string) []byte {
	return append([]byte(versionLine+versionID+"\n"), raw...)
}

// SplitVersion takes the leading version line (see Shown) off a saved
// document and returns the version it names; a document without one comes
// back as it is, with "". A byte order mark an editor put first goes too.
func SplitVersion(data []byte) (doc []byte, versionID string) {
	data = bytes.TrimPrefix(data, []byte("\ufeff"))
	if !bytes.HasPrefix(data, []byte(versionLine)) {
		return data, ""
	}
	line, rest, _ := bytes.Cut(data, []byte("\n"))
	return rest, strings.TrimSpace(string(line[len(versionLine):]))
}

// Validate checks a document as the import functions and the dequeue
// function will read it (a file saved from `config show` goes through
// SplitVersion first).
func (m *Manager) Validate(data []byte) (*config.Document, error) {
	return config.Parse(data, func(in json.RawMessage) error {
		_, err := dequeue.DecodeInput(in, m.OutboundPrefix)
		return err
	})
}

// Stored is the document in the bucket: nil Doc when there is none.
type Stored struct {
	Doc       *config.Document
	Raw       []byte
	ETag      string
	VersionID string
	Invalid   error // the stored document does not validate
}

// Current reads the stored document.
func (m *Manager) Current(ctx context.Context) (Stored, error) {
	out, err := m.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: &m.Bucket, Key: &m.Key})
	if s3io.IsNotFound(err) {
		return Stored{}, nil
	}
	if err != nil {
		return Stored{}, fmt.Errorf("read s3://%s/%s: %w", m.Bucket, m.Key, err)
	}
	defer out.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(out.Body, config.MaxSize+1))
	if err != nil {
		return Stored{}, fmt.Errorf("read s3://%s/%s: %w", m.Bucket, m.Key, err)
	}
	st := Stored{Raw: raw, ETag: aws.ToString(out.ETag), VersionID: aws.ToString(out.VersionId)}
	st.Doc, st.Invalid = m.Validate(raw)
	return st, nil
}

// Change is one difference between two documents.
type Change struct {
	What   string `json:"what"`   // route or job
	Name   string `json:"name"`   // the route's folder or the job's name
	Action string `json:"action"` // add, remove or change
	Detail string `json:"detail,omitempty"`
}

// Diff lists what next changes against the stored document (nil: none).
func Diff(old, next *config.Document) []Change {
	var out []Change
	oldRoutes, nextRoutes := map[string]string{}, map[string]string{}
	if old != nil {
		for _, r := range old.Routes.All() {
			oldRoutes[r.Name] = describe(r)
		}
	}
	for _, r := range next.Routes.All() {
		nextRoutes[r.Name] = describe(r)
	}
	out = append(out, diffMaps("route", oldRoutes, nextRoutes)...)
	oldJobs, nextJobs := map[string]string{}, map[string]string{}
	if old != nil {
		for _, j := range old.Jobs {
			oldJobs[j.Name] = describeJob(j)
		}
	}
	for _, j := range next.Jobs {
		nextJobs[j.Name] = describeJob(j)
	}
	return append(out, diffMaps("job", oldJobs, nextJobs)...)
}

func diffMaps(what string, old, next map[string]string) []Change {
	var out []Change
	names := map[string]bool{}
	for n := range old {
		names[n] = true
	}
	for n := range next {
		names[n] = true
	}
	sorted := make([]string, 0, len(names))
	for n := range names {
		sorted = append(sorted, n)
	}
	slices.Sort(sorted)
	for _, n := range sorted {
		o, inOld := old[n]
		x, inNext := next[n]
		switch {
		case !inOld:
			out = append(out, Change{What: what, Name: n, Action: "add", Detail: x})
		case !inNext:
			out = append(out, Change{What: what, Name: n, Action: "remove", Detail: o})
		case o != x:
			out = append(out, Change{What: what, Name: n, Action: "change", Detail: o + " → " + x})
		}
	}
	return out
}

// describe is a route as one comparable line, every setting in it.
func describe(r routes.Route) string { return fmt.Sprintf("%+v", r) }

func describeJob(j config.Job) string {
	var in bytes.Buffer
	json.Compact(&in, j.Input)
	state := "enabled"
	if !j.Enabled {
		state = "disabled"
	}
	return strings.Join([]string{j.Schedule, j.Timezone, state, in.String()}, " ")
}
