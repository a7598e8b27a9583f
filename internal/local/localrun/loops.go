package localrun

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"time"
)

// Loops play, each in its own goroutine until Stop, the parts of AWS that
// call the functions: the event source mappings, the poller's schedule
// (on a compressed clock), the export schedules of the stack's group
// (Scheduler) and, with the emulator, F&O's batch job. What goes wrong is
// said through Say; nothing stops a loop but Stop or the end of Start's
// context.
type Loops struct {
	Mappings     []*SQSMapping
	Poller       *Schedule
	Exports      *Scheduler
	ExportsEvery time.Duration // default 2s
	Batch        func()        // F&O's batch job (the emulator's Tick); nil with a real F&O
	Say          func(format string, a ...any)

	holds    map[string]*sync.Mutex
	stopping chan struct{}
	stop     sync.Once
	wg       sync.WaitGroup
}

// idle is how long a loop waits when it found nothing to do.
const idle = 250 * time.Millisecond

// Start starts the loops. When ctx ends, an invocation under way is cut
// short, as Lambda does to a function whose environment goes away.
func (l *Loops) Start(ctx context.Context) {
	l.holds = map[string]*sync.Mutex{}
	l.stopping = make(chan struct{})
	for _, m := range l.Mappings {
		hold := &sync.Mutex{}
		l.holds[m.QueueURL] = hold
		l.goLoop(ctx, func(ctx context.Context) bool { return l.poll(ctx, m, hold) })
	}
	if l.Poller != nil {
		l.goLoop(ctx, func(ctx context.Context) bool {
			if fired, _, err := l.Poller.Due(ctx, time.Now()); fired && err != nil && ctx.Err() == nil {
				l.say("  ! %s: %v", l.Poller.Name, err)
			}
			return false
		})
	}
	if l.Exports != nil {
		every := l.ExportsEvery
		if every <= 0 {
			every = 2 * time.Second
		}
		next := time.Now()
		l.goLoop(ctx, func(ctx context.Context) bool {
			if time.Now().Before(next) {
				return false
			}
			next = time.Now().Add(every)
			l.exports(ctx)
			return false
		})
	}
	if l.Batch != nil {
		l.goLoop(ctx, func(context.Context) bool { l.Batch(); return false })
	}
}

// Hold stops the mapping of queueURL from receiving (after the batch it
// may be handing to its function) until release is called.
func (l *Loops) Hold(queueURL string) (release func()) {
	h := l.holds[queueURL]
	if h == nil {
		return func() {}
	}
	h.Lock()
	return h.Unlock
}

// Stop ends the loops once the invocations under way have finished (what
// they counted is then in the logs), and waits for them. Calling it again
// does nothing.
func (l *Loops) Stop() {
	l.stop.Do(func() {
		if l.stopping != nil {
			close(l.stopping)
		}
	})
	l.wg.Wait()
}

// goLoop runs step until Stop or the end of ctx, pausing idle after a step
// that found nothing to do.
func (l *Loops) goLoop(ctx context.Context, step func(context.Context) bool) {
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		for ctx.Err() == nil {
			select {
			case <-l.stopping:
				return
			default:
			}
			if step(ctx) {
				continue
			}
			select {
			case <-ctx.Done():
			case <-l.stopping:
			case <-time.After(idle):
			}
		}
	}()
}

// poll hands one batch of the mapping's queue to its function and reports
// whether there was one.
func (l *Loops) poll(ctx context.Context, m *SQSMapping, hold *sync.Mutex) bool {
	hold.Lock()
	res, err := m.PollOnce(ctx)
	hold.Unlock()
	switch {
	case ctx.Err() != nil:
		return false
	case err != nil:
		l.say("  ! %s: %v", filepath.Base(m.QueueURL), err)
	case res.Err != nil:
		l.say("  ! %s batch of %d failed: %v", filepath.Base(m.QueueURL), res.Delivered, res.Err)
	case res.Failed > 0:
		l.say("  ! %s: %d of %d records returned for retry", filepath.Base(m.QueueURL), res.Failed, res.Delivered)
	}
	return res.Delivered > 0
}

// exports fires the export schedules that are due and says what ran.
func (l *Loops) exports(ctx context.Context) {
	fired, err := l.Exports.Step(ctx)
	if ctx.Err() != nil {
		return
	}
	for _, f := range fired {
		switch {
		case f.Err != nil:
			l.say("  ! schedule %s (%s): the dequeue function failed: %v", f.Schedule, l.Exports.Group, f.Err)
		case f.At.IsZero():
			l.say("  ! schedule %s (%s): %s", f.Schedule, l.Exports.Group, f.Note)
		default:
			gone := ""
			if f.Deleted {
				gone = "; deleted after its run, as ActionAfterCompletion DELETE asks"
			}
			if f.Note != "" {
				gone += "; " + f.Note
			}
			l.say("  ⏰ schedule %s (%s) ran the dequeue function: %s%s", f.Schedule, l.Exports.Group, truncate(string(f.Output), 200), gone)
		}
	}
	if err != nil {
		l.say("  ! export schedules: %v", err)
	}
}

func (l *Loops) say(format string, a ...any) {
	if l.Say != nil {
		l.Say(format, a...)
		return
	}
	fmt.Printf(format+"\n", a...)
}
