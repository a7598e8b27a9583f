package routes

import (
	"context"
	"errors"
	"sync"
	"time"
)

// ErrNotLoaded is Refresh's error while a live table has never loaded a
// configuration: it has no routes to go by, which is not the same as a
// configuration without the route.
var ErrNotLoaded = errors.New("routes: no configuration loaded yet")

// Loader returns the current route table. It returns the table it returned
// before when nothing changed or what changed cannot be used (it says why
// itself: a log line, a notification), and an error only when it has no
// table at all.
type Loader func(ctx context.Context) (*Table, error)

// live is what a Live table holds: the last table loaded and when.
type live struct {
	load  Loader
	every time.Duration
	now   func() time.Time

	refresh sync.Mutex // one load at a time
	mu      sync.Mutex // guards table and checked
	table   *Table
	checked time.Time
}

// Live is a table that follows the configuration through load, asked again
// by Refresh once every has passed. Until a load succeeds it has no routes
// and Loaded is false.
func Live(load Loader, every time.Duration, now func() time.Time) *Table {
	if now == nil {
		now = time.Now
	}
	return &Table{live: &live{load: load, every: every, now: now}}
}

func (l *live) current() *Table {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.table
}

// Refresh loads a live table's configuration again when it is older than
// its interval (a fixed table: nothing). A failed load keeps the routes
// loaded before; the error says why.
func (t *Table) Refresh(ctx context.Context) error {
	if t == nil || t.live == nil {
		return nil
	}
	l := t.live
	l.refresh.Lock()
	defer l.refresh.Unlock()
	had, err := l.reload(ctx, l.every)
	if err != nil && !had {
		return errors.Join(ErrNotLoaded, err)
	}
	return err
}

// reload loads the table again unless the one held was loaded less than
// within ago. had reports that a table was held before. The caller holds
// l.refresh.
func (l *live) reload(ctx context.Context, within time.Duration) (had bool, err error) {
	l.mu.Lock()
	fresh := l.table != nil && l.now().Sub(l.checked) < within
	had = l.table != nil
	l.mu.Unlock()
	if fresh {
		return had, nil
	}
	next, err := l.load(ctx)
	if err == nil && next == nil {
		err = errors.New("routes: the loader returned no table")
	}
	if err != nil {
		return had, err
	}
	l.mu.Lock()
	l.table, l.checked = next, l.now()
	l.mu.Unlock()
	return had, nil
}

// missRecheck is how soon after a load a miss may load the document again:
// the misses of one batch of files for an unknown folder cost one GET, not
// one each. It is short, since a route stored a moment before the last
// load must still be found.
const missRecheck = 100 * time.Millisecond

// LookupFresh is Lookup that, on a miss, looks at the configuration again
// at once (unless it did within missRecheck) before saying no: a route
// added a moment ago is found even though the table's interval has not
// passed, so its first files are not rejected as unrouted. A failed load
// keeps the answer of the table it had.
func (t *Table) LookupFresh(ctx context.Context, name string) (Route, bool) {
	if r, ok := t.Lookup(name); ok || t == nil || t.live == nil {
		return r, ok
	}
	l := t.live
	l.refresh.Lock()
	defer l.refresh.Unlock()
	l.reload(ctx, missRecheck) // a failed load leaves the table as it was
	return t.Lookup(name)
}

// Loaded reports whether the table has routes to go by: a fixed table, or
// a live one that loaded a configuration at least once.
func (t *Table) Loaded() bool {
	if t == nil {
		return false
	}
	return t.live == nil || t.live.current() != nil
}
