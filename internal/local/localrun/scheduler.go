package localrun

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/scheduler"
	"github.com/aws/aws-sdk-go-v2/service/scheduler/types"

	"github.com/fno-bridge/s3-fno/internal/ops/status"
)

// SchedulerAPI is the part of EventBridge Scheduler the local scheduler
// reads and deletes with.
type SchedulerAPI interface {
	ListSchedules(context.Context, *scheduler.ListSchedulesInput, ...func(*scheduler.Options)) (*scheduler.ListSchedulesOutput, error)
	GetSchedule(context.Context, *scheduler.GetScheduleInput, ...func(*scheduler.Options)) (*scheduler.GetScheduleOutput, error)
	DeleteSchedule(context.Context, *scheduler.DeleteScheduleInput, ...func(*scheduler.Options)) (*scheduler.DeleteScheduleOutput, error)
}

// Scheduler plays EventBridge Scheduler for one schedule group, which
// moto_server stores but never fires: each Step lists the group's
// schedules and invokes Function with a due schedule's input. rate() and
// cron() run in the schedule's time zone (status.NextRun computes the next
// time; a rate() first fires one rate after the schedule was created or
// changed); at() runs once and is then deleted when its
// ActionAfterCompletion is DELETE, as the service does. A disabled
// schedule, or one whose target is another function, never fires. A
// function error is reported, not retried: the export schedules invoke
// asynchronously and the function's EventInvokeConfig allows no retry.
type Scheduler struct {
	Client      SchedulerAPI
	Group       string
	FunctionARN string // the target the group's schedules must name
	Function    Invoker
	Now         func() time.Time // time.Now when nil

	known map[string]*tracked
}

// Fired is one invocation a Step made.
type Fired struct {
	Schedule string
	At       time.Time // when it was due
	Output   []byte
	Err      error
	Deleted  bool   // a one-off schedule deleted after it ran
	Note     string // why a schedule will not fire (said once), when Err and Output are empty
}

// tracked is what the scheduler knows of one schedule.
type tracked struct {
	modified time.Time // LastModificationDate when last read
	expr, tz string
	input    string
	enabled  bool
	deleteAt bool // ActionAfterCompletion DELETE
	target   string
	next     time.Time // zero: never (disabled, done, or not computable)
	done     bool      // an at() that ran
	noted    bool
}

// Step fires every schedule of the group that is due now.
func (s *Scheduler) Step(ctx context.Context) ([]Fired, error) {
	now := time.Now()
	if s.Now != nil {
		now = s.Now()
	}
	if s.known == nil {
		s.known = map[string]*tracked{}
	}
	seen := map[string]bool{}
	var out []Fired
	p := scheduler.NewListSchedulesPaginator(s.Client, &scheduler.ListSchedulesInput{GroupName: &s.Group})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return out, fmt.Errorf("list the schedules of group %s: %w", s.Group, err)
		}
		for _, sum := range page.Schedules {
			name := aws.ToString(sum.Name)
			seen[name] = true
			t, note, err := s.read(ctx, sum, now)
			if err != nil {
				return out, err
			}
			if note != "" && !t.noted {
				t.noted = true
				out = append(out, Fired{Schedule: name, Note: note})
			}
			if f, ok := s.fire(ctx, name, t, now); ok {
				out = append(out, f)
			}
		}
	}
	for name := range s.known {
		if !seen[name] {
			delete(s.known, name)
		}
	}
	return out, nil
}

// read returns what is known of a schedule, reading it again when it is
// new or changed, with a note when it will never fire here.
func (s *Scheduler) read(ctx context.Context, sum types.ScheduleSummary, now time.Time) (*tracked, string, error) {
	name := aws.ToString(sum.Name)
	t := s.known[name]
	mod := aws.ToTime(sum.LastModificationDate)
	if t != nil && !mod.IsZero() && mod.Equal(t.modified) {
		return t, "", nil
	}
	got, err := s.Client.GetSchedule(ctx, &scheduler.GetScheduleInput{Name: &name, GroupName: &s.Group})
	if err != nil {
		return nil, "", fmt.Errorf("read schedule %s of group %s: %w", name, s.Group, err)
	}
	nt := &tracked{modified: mod, expr: aws.ToString(got.ScheduleExpression), tz: aws.ToString(got.ScheduleExpressionTimezone),
		enabled: got.State != types.ScheduleStateDisabled, deleteAt: got.ActionAfterCompletion == types.ActionAfterCompletionDelete}
	if got.Target != nil {
		nt.input, nt.target = aws.ToString(got.Target.Input), aws.ToString(got.Target.Arn)
	}
	if nt.tz == "" {
		nt.tz = "UTC"
	}
	if t != nil && t.expr == nt.expr && t.tz == nt.tz {
		nt.done, nt.noted = t.done, t.noted
	}
	s.known[name] = nt
	if s.FunctionARN != "" && nt.target != s.FunctionARN {
		return nt, fmt.Sprintf("targets %s, not the dequeue function %s: not fired here", nt.target, s.FunctionARN), nil
	}
	base := aws.ToTime(got.LastModificationDate)
	if base.IsZero() || base.After(now) {
		base = now
	}
	note := ""
	nt.next, note = firstRun(nt.expr, nt.tz, base, now)
	if !nt.enabled {
		nt.next = time.Time{}
	}
	return nt, note, nil
}

var atRE = regexp.MustCompile(`^at\((\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})\)$`)

// firstRun is when a schedule first fires: an at()'s time, a rate() one
// rate after base, a cron()'s next matching minute after now. A note says
// why it never will.
func firstRun(expr, tz string, base, now time.Time) (time.Time, string) {
	loc, err := time.LoadLocation(tz)
	if err != nil {
		return time.Time{}, fmt.Sprintf("time zone %q is unknown here: not fired", tz)
	}
	if m := atRE.FindStringSubmatch(expr); m != nil {
		at, err := time.ParseInLocation("2006-01-02T15:04:05", m[1], loc)
		if err != nil {
			return time.Time{}, fmt.Sprintf("%s: %v", expr, err)
		}
		return at, ""
	}
	var next time.Time
	if strings.HasPrefix(expr, "rate(") {
		next = status.NextRun(expr, tz, base, base)
	} else {
		next = status.NextRun(expr, tz, now, time.Time{})
	}
	if next.IsZero() {
		return next, fmt.Sprintf("%s: not a schedule the local scheduler can evaluate (L, W and # are the service's own): not fired", expr)
	}
	return next, ""
}

// fire invokes the function when the schedule is due and works out its
// next time.
func (s *Scheduler) fire(ctx context.Context, name string, t *tracked, now time.Time) (Fired, bool) {
	if t.done || t.next.IsZero() || now.Before(t.next) {
		return Fired{}, false
	}
	f := Fired{Schedule: name, At: t.next}
	f.Output, f.Err = s.Function.Invoke(ctx, []byte(t.input))
	switch {
	case atRE.MatchString(t.expr):
		t.done, t.next = true, time.Time{}
		if t.deleteAt {
			if _, err := s.Client.DeleteSchedule(ctx, &scheduler.DeleteScheduleInput{Name: &name, GroupName: &s.Group}); err != nil {
				f.Note = "not deleted after its run: " + err.Error()
			} else {
				f.Deleted = true
				delete(s.known, name)
			}
		}
	case strings.HasPrefix(t.expr, "rate("):
		t.next = status.NextRun(t.expr, t.tz, now, f.At)
	default:
		t.next = status.NextRun(t.expr, t.tz, now, time.Time{})
	}
	return f, true
}
