// Package config is the configuration document: the import routes and the
// export jobs, one JSON object in the bucket (CONFIG_KEY, default
// _config/config.json). It lives there, not in the template, because a
// tenant has hundreds of recurring jobs (Lambda's 4 KB of environment holds
// about 29 routes), because a change must take effect without a deploy,
// and because the bucket is already versioned: every change is kept, and a
// function that finds a document it cannot use goes back to the newest
// version it can.
package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	// Lambda's provided.al2023 runtime has no zoneinfo: the time zones
	// jobs name come with the binary.
	_ "time/tzdata"

	"github.com/fno-bridge/s3-fno/internal/shared/layout"
	"github.com/fno-bridge/s3-fno/internal/shared/routes"
)

// DefaultKey is where the document is unless CONFIG_KEY says otherwise.
const DefaultKey = layout.DefaultConfigKey

// MaxSize bounds the document: 1,000 routes and 200 jobs take well under a
// megabyte.
const MaxSize = 8 << 20

// Document is a validated configuration.
type Document struct {
	Routes *routes.Table
	Jobs   []Job
}

// Job is an export job: when it runs and what the dequeue function gets.
type Job struct {
	Name     string // "job": also the schedule's name
	Schedule string // an EventBridge Scheduler rate() or cron() expression
	Timezone string // IANA name for cron(); "UTC" when not given
	Enabled  bool   // "enabled", default true
	// Input is the dequeue function's input: the job's object without
	// schedule, timezone and enabled.
	Input json.RawMessage
}

// JobCheck validates a job's input (the dequeue function's decoder); nil
// checks only the schedule fields.
type JobCheck func(input json.RawMessage) error

// Parse reads and validates a document. Errors name the place, such as
// `routes[3] ("customers"): activityId: "x" is not a GUID` or
// `jobs[0] ("groups"): schedule: ...`.
func Parse(data []byte, check JobCheck) (*Document, error) {
	if len(data) > MaxSize {
		return nil, fmt.Errorf("the document is %d bytes; at most %d", len(data), MaxSize)
	}
	var raw struct {
		Routes []json.RawMessage `json:"routes"`
		Jobs   []json.RawMessage `json:"jobs"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("not a configuration document (an object with \"routes\" and \"jobs\" arrays): %w", err)
	}
	if dec.More() {
		return nil, fmt.Errorf("not a configuration document: more than one JSON value")
	}
	tbl, err := routes.ParseList(raw.Routes, "routes")
	if err != nil {
		return nil, err
	}
	d := &Document{Routes: tbl}
	seen := map[string]bool{}
	for i, r := range raw.Jobs {
		j, err := parseJob(r, check)
		where := fmt.Sprintf("jobs[%d]", i)
		if j.Name != "" {
			where += fmt.Sprintf(" (%q)", j.Name)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		if seen[j.Name] {
			return nil, fmt.Errorf("%s: job: %q is configured twice", where, j.Name)
		}
		seen[j.Name] = true
		d.Jobs = append(d.Jobs, j)
	}
	return d, nil
}

// jobNameRE is what EventBridge Scheduler accepts as a schedule name, less
// the room a one-off run's suffix takes.
var jobNameRE = regexp.MustCompile(`^[0-9A-Za-z_.-]{1,48}$`)

// runNowRE names the one-off schedule of a job run now (RunNowName).
var runNowRE = regexp.MustCompile(`\.now[0-9]+$`)

// RunNowName is the name of a one-off schedule running job at t.
func RunNowName(job string, t time.Time) string { return fmt.Sprintf("%s.now%d", job, t.Unix()) }

// IsRunNow says whether a schedule name is a one-off run's.
func IsRunNow(name string) bool { return runNowRE.MatchString(name) }

func parseJob(raw json.RawMessage, check JobCheck) (Job, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil || fields == nil {
		return Job{}, fmt.Errorf("not a job object (fields job, schedule, timezone, enabled and the export's input)")
	}
	var j Job
	str := func(name string) (string, error) {
		v, ok := fields[name]
		if !ok {
			return "", nil
		}
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return "", fmt.Errorf("%s: not a string", name)
		}
		return strings.TrimSpace(s), nil
	}
	var err error
	if j.Name, err = str("job"); err != nil {
		return j, err
	}
	if !jobNameRE.MatchString(j.Name) || IsRunNow(j.Name) {
		return j, fmt.Errorf("job: %q must be 1 to 48 letters, digits, '.', '_' or '-', not ending in .now<digits> (it names the job's schedule)", j.Name)
	}
	if j.Schedule, err = str("schedule"); err != nil {
		return j, err
	}
	if err := CheckSchedule(j.Schedule); err != nil {
		return j, fmt.Errorf("schedule: %w", err)
	}
	if j.Timezone, err = str("timezone"); err != nil {
		return j, err
	}
	if j.Timezone == "" {
		j.Timezone = "UTC"
	}
	if _, err := loadLocation(j.Timezone); err != nil {
		return j, fmt.Errorf("timezone: %q is not an IANA time zone such as \"Europe/Amsterdam\"", j.Timezone)
	}
	j.Enabled = true
	if v, ok := fields["enabled"]; ok {
		if err := json.Unmarshal(v, &j.Enabled); err != nil {
			return j, fmt.Errorf("enabled: not true or false")
		}
	}
	for _, k := range []string{"schedule", "timezone", "enabled"} {
		delete(fields, k)
	}
	if j.Input, err = json.Marshal(fields); err != nil {
		return j, err
	}
	if check != nil {
		if err := check(j.Input); err != nil {
			return j, err
		}
	}
	return j, nil
}

var rateRE = regexp.MustCompile(`^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$`)

// CheckSchedule accepts what EventBridge Scheduler takes for a recurring
// schedule: rate(N unit) (singular unit for 1) or cron() with six fields,
// one of day-of-month and day-of-week "?".
func CheckSchedule(s string) error {
	if m := rateRE.FindStringSubmatch(s); m != nil {
		n, err := strconv.Atoi(m[1])
		if err != nil || n < 1 {
			return fmt.Errorf("%q: the rate must be a whole number from 1", s)
		}
		if singular := !strings.HasSuffix(m[2], "s"); singular != (n == 1) {
			unit := strings.TrimSuffix(m[2], "s")
			if n != 1 {
				unit += "s"
			}
			return fmt.Errorf("%q: write rate(%d %s)", s, n, unit)
		}
		return nil
	}
	if strings.HasPrefix(s, "cron(") && strings.HasSuffix(s, ")") {
		f := strings.Fields(s[len("cron(") : len(s)-1])
		if len(f) != 6 {
			return fmt.Errorf("%q: cron() takes six fields: minutes hours day-of-month month day-of-week year", s)
		}
		if (f[2] == "?") == (f[4] == "?") {
			return fmt.Errorf("%q: exactly one of day-of-month and day-of-week must be \"?\"", s)
		}
		for _, x := range f {
			if strings.Trim(x, "0123456789*?,-/LW#ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") != "" {
				return fmt.Errorf("%q: field %q has characters cron() does not take", s, x)
			}
		}
		return nil
	}
	return fmt.Errorf("%q must be rate(<n> <unit>) or cron(<six fields>), such as \"rate(1 hour)\" or \"cron(0 6 * * ? *)\"", s)
}

// zones caches time zones: a document names few, each many times.
var zones sync.Map

func loadLocation(name string) (*time.Location, error) {
	if l, ok := zones.Load(name); ok {
		return l.(*time.Location), nil
	}
	l, err := time.LoadLocation(name)
	if err == nil {
		zones.Store(name, l)
	}
	return l, err
}
