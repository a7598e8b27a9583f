package poller

import (
	"context"
	"maps"
	"time"

	"github.com/fno-bridge/s3-fno/internal/imports/ledger"
)

// boardStale: an import not seen for this long left the ledger by a way
// the run did not see (the poller checks every import at least hourly).
const boardStale = 24 * time.Hour

// note puts a record checked (or retried) this run on the board.
func (c *counters) note(r ledger.Record) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.board == nil {
		c.board = map[string]*ledger.BoardEntry{}
	}
	e := ledger.EntryOf(r)
	c.board[r.Identity] = &e
}

// done takes a finalized or retired import off the board.
func (c *counters) done(identity string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.board == nil {
		c.board = map[string]*ledger.BoardEntry{}
	}
	c.board[identity] = nil
}

// saveBoard writes this run's changes to the board: one read and one
// write, and none when the run changed nothing.
func (p *Poller) saveBoard(ctx context.Context, c *counters) {
	c.mu.Lock()
	changes := maps.Clone(c.board)
	c.mu.Unlock()
	if changes == nil {
		changes = map[string]*ledger.BoardEntry{}
	}
	now := p.cfg.Now().UTC()
	b, err := p.ledger.ReadBoard(ctx)
	if err != nil {
		p.log.WarnContext(ctx, "poller: cannot read the status board; writing a new one", "error", err.Error())
	}
	for id, e := range b.Imports {
		if now.Sub(e.CheckedAt) > boardStale {
			delete(b.Imports, id)
			changes[id] = nil
		}
	}
	if len(changes) == 0 {
		return
	}
	for id, e := range changes {
		if e == nil {
			delete(b.Imports, id)
		} else {
			b.Imports[id] = *e
		}
	}
	b.UpdatedAt = now
	if len(b.Imports) == 0 {
		// Nothing in flight: no board, so _state/ is empty when the
		// pipeline is idle.
		if err := p.ledger.DeleteBoard(ctx); err != nil {
			p.log.WarnContext(ctx, "poller: the empty status board was not removed", "error", err.Error())
		}
		return
	}
	if err := p.ledger.WriteBoard(ctx, b); err != nil {
		p.log.WarnContext(ctx, "poller: the status board was not written; the next run writes it", "error", err.Error())
	}
}
