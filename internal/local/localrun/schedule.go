package localrun

import (
	"context"
	"time"
)

// Schedule is one EventBridge Scheduler schedule with a constant input, on
// a compressed clock: it fires every Every of real time.
type Schedule struct {
	Name     string
	Every    time.Duration
	Input    []byte
	Function Invoker

	next time.Time
}

// Due fires the schedule if its time has come, and reports whether it did
// and what the function answered.
func (s *Schedule) Due(ctx context.Context, now time.Time) (fired bool, out []byte, err error) {
	if now.Before(s.next) {
		return false, nil, nil
	}
	s.next = now.Add(s.Every)
	out, err = s.Function.Invoke(ctx, s.Input)
	return true, out, err
}
