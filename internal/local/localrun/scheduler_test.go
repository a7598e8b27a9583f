package localrun_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/scheduler"
	"github.com/aws/aws-sdk-go-v2/service/scheduler/types"

	"github.com/fno-bridge/s3-fno/internal/local/localrun"
	"github.com/fno-bridge/s3-fno/internal/local/mototest"
)

const dequeueARN = "arn:aws:lambda:us-east-1:123456789012:function:DequeueFunction"

// TestSchedulerFiresMotosSchedules: schedules stored in moto (which never
// fires them) are fired by the scheduler at their time on its clock: a
// rate() one rate after it was made and every rate after; a cron() at its
// next matching minute in its time zone; an at() once, then deleted as
// ActionAfterCompletion DELETE asks; a disabled one, or one aimed at
// another function, never; a changed expression takes effect.
func TestSchedulerFiresMotosSchedules(t *testing.T) {
	ctx := context.Background()
	sc := scheduler.NewFromConfig(mototest.Config(t))
	group := mototest.Name("exports")
	if _, err := sc.CreateScheduleGroup(ctx, &scheduler.CreateScheduleGroupInput{Name: &group}); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now().UTC().Truncate(time.Second)
	mk := func(name, expr, tz string, state types.ScheduleState, target string, after types.ActionAfterCompletion) {
		t.Helper()
		if _, err := sc.CreateSchedule(ctx, &scheduler.CreateScheduleInput{Name: &name, GroupName: &group, ScheduleExpression: &expr,
			ScheduleExpressionTimezone: aws.String(tz), State: state, ActionAfterCompletion: after,
			FlexibleTimeWindow: &types.FlexibleTimeWindow{Mode: types.FlexibleTimeWindowModeOff},
			Target:             &types.Target{Arn: aws.String(target), RoleArn: aws.String("arn:aws:iam::123456789012:role/r"), Input: aws.String(`{"job":"` + name + `"}`)},
		}); err != nil {
			t.Fatal(err)
		}
	}
	ams := mustZone(t, "Europe/Amsterdam")
	at := t0.Add(90 * time.Second).In(ams)
	daily := t0.Add(3 * time.Hour).In(ams).Truncate(time.Minute) // its minute and hour in Amsterdam, daily
	mk("hourly", "rate(1 hour)", "UTC", types.ScheduleStateEnabled, dequeueARN, "")
	mk("daily", fmt.Sprintf("cron(%d %d * * ? *)", daily.Minute(), daily.Hour()), "Europe/Amsterdam", types.ScheduleStateEnabled, dequeueARN, "")
	mk("once.now1", "at("+at.Format("2006-01-02T15:04:05")+")", "Europe/Amsterdam", types.ScheduleStateEnabled, dequeueARN, types.ActionAfterCompletionDelete)
	mk("off", "rate(1 minute)", "UTC", types.ScheduleStateDisabled, dequeueARN, "")
	mk("elsewhere", "rate(1 minute)", "UTC", types.ScheduleStateEnabled, "arn:aws:lambda:us-east-1:123456789012:function:other", "")

	var got []string
	now := t0
	s := &localrun.Scheduler{Client: sc, Group: group, FunctionARN: dequeueARN, Now: func() time.Time { return now },
		Function: localrun.InvokerFunc(func(_ context.Context, in []byte) ([]byte, error) {
			got = append(got, string(in))
			return []byte(`{"landed":0}`), nil
		})}
	step := func(at time.Time) []localrun.Fired {
		t.Helper()
		now = at
		got = nil
		fired, err := s.Step(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return fired
	}

	fired := step(t0)
	if len(got) != 0 || len(fired) != 1 || fired[0].Schedule != "elsewhere" || !strings.Contains(fired[0].Note, "not fired here") {
		t.Fatalf("at the start: invoked %v, fired %+v", got, fired)
	}
	if step(t0.Add(89 * time.Second)); len(got) != 0 {
		t.Errorf("before anything is due: %v", got)
	}
	fired = step(t0.Add(91 * time.Second))
	if !slices.Equal(got, []string{`{"job":"once.now1"}`}) || len(fired) != 1 || !fired[0].Deleted || !fired[0].At.Equal(at) {
		t.Fatalf("the at() schedule: invoked %v, fired %+v", got, fired)
	}
	if _, err := sc.GetSchedule(ctx, &scheduler.GetScheduleInput{Name: aws.String("once.now1"), GroupName: &group}); err == nil {
		t.Error("the one-off schedule was not deleted after its run")
	}
	if step(t0.Add(2 * time.Minute)); len(got) != 0 {
		t.Errorf("the at() fired again, or something else did: %v", got)
	}
	if step(t0.Add(time.Hour + 5*time.Second)); !slices.Equal(got, []string{`{"job":"hourly"}`}) {
		t.Errorf("an hour after it was made, the rate(1 hour) schedule: %v", got)
	}
	if step(t0.Add(time.Hour + 30*time.Second)); len(got) != 0 {
		t.Errorf("the rate() fired twice in its hour: %v", got)
	}
	if step(t0.Add(2*time.Hour + 5*time.Second)); !slices.Equal(got, []string{`{"job":"hourly"}`}) {
		t.Errorf("two hours on, the rate(1 hour) schedule: %v", got)
	}
	if step(daily.Add(-time.Second)); slices.Contains(got, `{"job":"daily"}`) {
		t.Errorf("the cron() fired before its minute")
	}
	if step(daily.Add(time.Second)); !slices.Contains(got, `{"job":"daily"}`) {
		t.Errorf("at %s in Amsterdam the cron() did not fire: %v", daily.Format("15:04"), got)
	}
	if step(daily.Add(time.Minute)); slices.Contains(got, `{"job":"daily"}`) {
		t.Errorf("the cron() fired again the same day")
	}

	if _, err := sc.UpdateSchedule(ctx, &scheduler.UpdateScheduleInput{Name: aws.String("off"), GroupName: &group,
		ScheduleExpression: aws.String("rate(1 minute)"), State: types.ScheduleStateEnabled,
		FlexibleTimeWindow: &types.FlexibleTimeWindow{Mode: types.FlexibleTimeWindowModeOff},
		Target:             &types.Target{Arn: aws.String(dequeueARN), RoleArn: aws.String("arn:aws:iam::123456789012:role/r"), Input: aws.String(`{"job":"off"}`)},
	}); err != nil {
		t.Fatal(err)
	}
	enabled := time.Now().UTC()
	if step(later(now, enabled).Add(2 * time.Minute)); !slices.Contains(got, `{"job":"off"}`) {
		t.Errorf("a schedule enabled later did not fire after its rate: %v", got)
	}
}

func mustZone(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
