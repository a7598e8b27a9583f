package configdoc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/scheduler"
	"github.com/aws/aws-sdk-go-v2/service/scheduler/types"

	"github.com/fno-bridge/s3-fno/internal/shared/config"
)

// Scheduler is the part of EventBridge Scheduler the schedules need.
type Scheduler interface {
	ListSchedules(context.Context, *scheduler.ListSchedulesInput, ...func(*scheduler.Options)) (*scheduler.ListSchedulesOutput, error)
	GetSchedule(context.Context, *scheduler.GetScheduleInput, ...func(*scheduler.Options)) (*scheduler.GetScheduleOutput, error)
	CreateSchedule(context.Context, *scheduler.CreateScheduleInput, ...func(*scheduler.Options)) (*scheduler.CreateScheduleOutput, error)
	UpdateSchedule(context.Context, *scheduler.UpdateScheduleInput, ...func(*scheduler.Options)) (*scheduler.UpdateScheduleOutput, error)
	DeleteSchedule(context.Context, *scheduler.DeleteScheduleInput, ...func(*scheduler.Options)) (*scheduler.DeleteScheduleOutput, error)
}

// Schedules are the export jobs' schedules: one per job, named after it,
// in the stack's group, invoking the dequeue function with the job as
// input through the stack's role, undeliverable ticks to its dead-letter
// queue.
type Schedules struct {
	Client      Scheduler
	Group       string // the stack's ExportScheduleGroup
	FunctionARN string // the dequeue function
	RoleARN     string // ExportScheduleRoleArn
	DLQARN      string // ScheduleDLQArn
}

// Retries of a tick EventBridge Scheduler could not deliver (the function
// throttled, say), within ten minutes.
const (
	retryAttempts = 5
	retryMaxAge   = 600
)

// ScheduleChange is what Sync did (or, planning, would do) to one job's
// schedule.
type ScheduleChange struct {
	Job    string `json:"job"`
	Action string `json:"action"` // create, update, delete or keep
	Detail string `json:"detail,omitempty"`
}

func (s *Schedules) check() error {
	if s == nil || s.Client == nil || s.Group == "" || s.FunctionARN == "" || s.RoleARN == "" {
		return errors.New("the export schedules need the stack's schedule group, dequeue function and schedule role " +
			"(outputs ExportScheduleGroup, DequeueFunctionArn, ExportScheduleRoleArn: give --stack)")
	}
	return nil
}

// Sync makes the group's schedules match the document's jobs; with apply
// false it only says what it would do.
func (s *Schedules) Sync(ctx context.Context, doc *config.Document, apply bool) ([]ScheduleChange, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	existing, err := s.list(ctx)
	if err != nil {
		return nil, err
	}
	var out []ScheduleChange
	for _, j := range doc.Jobs {
		want := s.want(j)
		c := ScheduleChange{Job: j.Name, Action: "create"}
		if slices.Contains(existing, j.Name) {
			got, err := s.Client.GetSchedule(ctx, &scheduler.GetScheduleInput{Name: &j.Name, GroupName: &s.Group})
			if err != nil {
				return out, fmt.Errorf("read the schedule of job %q: %w", j.Name, err)
			}
			c.Action, c.Detail = "keep", ""
			if d := differs(got, want); d != "" {
				c.Action, c.Detail = "update", d
			}
		}
		if apply {
			if err := s.write(ctx, c.Action, want); err != nil {
				return out, err
			}
		}
		out = append(out, c)
	}
	for _, name := range existing {
		if slices.ContainsFunc(doc.Jobs, func(j config.Job) bool { return j.Name == name }) {
			continue
		}
		if apply {
			if _, err := s.Client.DeleteSchedule(ctx, &scheduler.DeleteScheduleInput{Name: aws.String(name), GroupName: &s.Group}); err != nil {
				return out, fmt.Errorf("delete the schedule of job %q (no longer in the document): %w", name, err)
			}
		}
		out = append(out, ScheduleChange{Job: name, Action: "delete", Detail: "no longer in the document"})
	}
	return out, nil
}

func (s *Schedules) list(ctx context.Context) ([]string, error) {
	var names []string
	p := scheduler.NewListSchedulesPaginator(s.Client, &scheduler.ListSchedulesInput{GroupName: &s.Group})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list the schedules of group %s: %w", s.Group, err)
		}
		for _, sc := range page.Schedules {
			if !config.IsRunNow(aws.ToString(sc.Name)) { // a one-off run deletes itself
				names = append(names, aws.ToString(sc.Name))
			}
		}
	}
	slices.Sort(names)
	return names, nil
}

// want is a job's schedule as it should be.
func (s *Schedules) want(j config.Job) *scheduler.CreateScheduleInput {
	state := types.ScheduleStateEnabled
	if !j.Enabled {
		state = types.ScheduleStateDisabled
	}
	t := &types.Target{Arn: &s.FunctionARN, RoleArn: &s.RoleARN, Input: aws.String(string(j.Input)),
		RetryPolicy: &types.RetryPolicy{MaximumEventAgeInSeconds: aws.Int32(retryMaxAge), MaximumRetryAttempts: aws.Int32(retryAttempts)}}
	if s.DLQARN != "" {
		t.DeadLetterConfig = &types.DeadLetterConfig{Arn: &s.DLQARN}
	}
	return &scheduler.CreateScheduleInput{Name: aws.String(j.Name), GroupName: &s.Group, ScheduleExpression: aws.String(j.Schedule),
		ScheduleExpressionTimezone: aws.String(j.Timezone), State: state, Target: t,
		FlexibleTimeWindow: &types.FlexibleTimeWindow{Mode: types.FlexibleTimeWindowModeOff},
		Description:        aws.String("Export job " + j.Name + " (s3-fno configuration document)")}
}

func (s *Schedules) write(ctx context.Context, action string, w *scheduler.CreateScheduleInput) error {
	var err error
	switch action {
	case "create":
		_, err = s.Client.CreateSchedule(ctx, w)
	case "update":
		_, err = s.Client.UpdateSchedule(ctx, &scheduler.UpdateScheduleInput{Name: w.Name, GroupName: w.GroupName,
			ScheduleExpression: w.ScheduleExpression, ScheduleExpressionTimezone: w.ScheduleExpressionTimezone, State: w.State,
			Target: w.Target, FlexibleTimeWindow: w.FlexibleTimeWindow, Description: w.Description})
	}
	if err != nil {
		return fmt.Errorf("%s the schedule of job %q: %w", action, aws.ToString(w.Name), err)
	}
	return nil
}

// differs says how a schedule differs from what it should be ("": not).
func differs(got *scheduler.GetScheduleOutput, want *scheduler.CreateScheduleInput) string {
	var d []string
	if aws.ToString(got.ScheduleExpression) != aws.ToString(want.ScheduleExpression) {
		d = append(d, "schedule "+aws.ToString(got.ScheduleExpression)+" → "+aws.ToString(want.ScheduleExpression))
	}
	if tz := aws.ToString(got.ScheduleExpressionTimezone); tz != aws.ToString(want.ScheduleExpressionTimezone) && !(tz == "" && aws.ToString(want.ScheduleExpressionTimezone) == "UTC") {
		d = append(d, "timezone "+tz+" → "+aws.ToString(want.ScheduleExpressionTimezone))
	}
	if got.State != want.State {
		d = append(d, "state "+string(got.State)+" → "+string(want.State))
	}
	gt, wt := got.Target, want.Target
	switch {
	case gt == nil:
		d = append(d, "no target")
	default:
		if aws.ToString(gt.Arn) != aws.ToString(wt.Arn) || aws.ToString(gt.RoleArn) != aws.ToString(wt.RoleArn) {
			d = append(d, "target or role")
		}
		if !sameJSON(aws.ToString(gt.Input), aws.ToString(wt.Input)) {
			d = append(d, "input")
		}
		if (gt.DeadLetterConfig == nil) != (wt.DeadLetterConfig == nil) ||
			(gt.DeadLetterConfig != nil && aws.ToString(gt.DeadLetterConfig.Arn) != aws.ToString(wt.DeadLetterConfig.Arn)) {
			d = append(d, "dead-letter queue")
		}
	}
	return strings.Join(d, "; ")
}

func sameJSON(a, b string) bool {
	var x, y any
	if json.Unmarshal([]byte(a), &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		return a == b
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return bytes.Equal(xa, ya)
}

// RunNow runs a job once, now: a one-off schedule (at(), a minute ahead at
// most) with the job's target, deleted by the service once it ran. It goes
// through EventBridge Scheduler like every run, so it needs no permission
// to invoke the function, and the run records and alarms are the usual.
func (s *Schedules) RunNow(ctx context.Context, j config.Job, now time.Time) (string, error) {
	if err := s.check(); err != nil {
		return "", err
	}
	w := s.want(j)
	at := now.UTC().Truncate(time.Second).Add(time.Second)
	w.Name = aws.String(config.RunNowName(j.Name, at))
	w.ScheduleExpression = aws.String("at(" + at.Format("2006-01-02T15:04:05") + ")")
	w.ScheduleExpressionTimezone = aws.String("UTC")
	w.State = types.ScheduleStateEnabled
	w.ActionAfterCompletion = types.ActionAfterCompletionDelete
	w.Description = aws.String("Export job " + j.Name + ": one run, asked for with s3fno jobs run")
	if _, err := s.Client.CreateSchedule(ctx, w); err != nil {
		return "", fmt.Errorf("schedule a run of job %q now: %w", j.Name, err)
	}
	return aws.ToString(w.Name), nil
}
