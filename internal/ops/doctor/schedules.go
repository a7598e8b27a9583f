package doctor

import (
	"context"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/scheduler"
	schedtypes "github.com/aws/aws-sdk-go-v2/service/scheduler/types"
)

// schedules checks that each schedule exists and is enabled.
func (d *Doctor) schedules(ctx context.Context, r *Report) {
	if len(d.Stack.Schedules) == 0 {
		c := Check{Name: "schedules", Result: Skip, Detail: "none known", Fix: "give --stack NAME, or --schedule NAME for each"}
		if d.Stack.Name != "" {
			c.Detail, c.Fix = "the stack has no AWS::Scheduler::Schedule resource", "give --schedule NAME for each schedule to check"
		}
		r.add(c)
		return
	}
	for _, name := range d.Stack.Schedules {
		r.add(d.within(ctx, func(ctx context.Context) Check {
			c := Check{Name: "schedule " + name, Result: OK, Detail: "enabled"}
			out, err := d.AWS.Scheduler.GetSchedule(ctx, &scheduler.GetScheduleInput{Name: &name})
			switch {
			case err != nil:
				c.Result, c.Detail, c.Fix = Fail, why(err), "check the schedule exists (default group) and your credentials may scheduler:GetSchedule"
			case out.State != schedtypes.ScheduleStateEnabled:
				c.Result, c.Detail = Fail, fmt.Sprintf("state %s: nothing runs it", out.State)
				c.Fix = "enable it in the EventBridge Scheduler console (or redeploy the stack) once whatever disabled it is over"
			}
			return c
		}))
	}
}

// deadLetters says what each non-empty dead-letter queue means.
func (d *Doctor) deadLetters(r *Report, depth map[string]int) {
	s := d.Stack
	for _, q := range []struct{ name, url, fix string }{
		{"import dead-letter queue empty", s.ImportDLQ, "their files wait in inbound/ and their entity's later files went on without them: " +
			"fix the cause (the enqueue function's logs say it), then s3fno redrive"},
		{"arrivals dead-letter queue empty", s.ArrivalsDLQ, "S3 notifications the router could not handle: the poller's sweep finds " +
			"their files anyway; read the router's logs, then purge the queue"},
		{"schedule dead-letter queue empty", s.ScheduleDLQ, "poll or export runs that failed (each message holds the run's " +
			"input and error) or ticks EventBridge Scheduler could not deliver: the next ticks run again; read the messages " +
			"and the function's logs, then purge the queue once the cause is gone"},
	} {
		n, known := depth[q.url]
		if !known {
			continue
		}
		c := Check{Name: q.name, Result: OK, Detail: "empty"}
		if n > 0 {
			c.Result, c.Detail, c.Fix = Fail, fmt.Sprintf("%d message%s", n, map[bool]string{true: "", false: "s"}[n == 1]), q.fix
		}
		r.add(c)
	}
}

// exportSchedules checks that the export jobs' schedules are what the
// configuration document says: one per job, in step.
func (d *Doctor) exportSchedules(ctx context.Context, r *Report) {
	if d.Exports == nil {
		r.add(Check{Name: "export schedules", Result: Skip, Detail: "the schedule group is not known", Fix: "give --stack NAME"})
		return
	}
	r.add(d.within(ctx, func(ctx context.Context) Check {
		c := Check{Name: "export schedules", Result: OK}
		plan, err := d.Exports(ctx)
		if err != nil {
			c.Result, c.Detail, c.Fix = Fail, why(err), "check the configuration document (s3fno config show) and that your credentials may scheduler:ListSchedules"
			return c
		}
		var off []string
		for _, p := range plan {
			if p.Action != "keep" {
				off = append(off, p.Job+": "+p.Action+" "+p.Detail)
			}
		}
		c.Detail = fmt.Sprintf("%d job(s), each with its schedule", len(plan))
		if len(off) > 0 {
			c.Result, c.Detail = Fail, "not as the document says: "+strings.Join(off, "; ")
			c.Fix = "apply the document again: s3fno config show > config.json && s3fno config apply config.json"
		}
		return c
	}))
}
