package ledger

import (
	"context"
	"time"

	"github.com/fno-bridge/s3-fno/internal/shared/s3io"
)

// Board is the poller's summary of the imports in flight, written once per
// run: the last F&O status of each import it has checked, by identity. A
// status view reads it in one request, however many imports are in flight;
// imports released but not checked yet are not on it (the released markers
// count them).
type Board struct {
	UpdatedAt time.Time             `json:"updatedAt"`
	Imports   map[string]BoardEntry `json:"imports"`
}

// BoardEntry is one import on the board.
type BoardEntry struct {
	Route      string    `json:"route"`
	Key        string    `json:"key"`
	MessageID  string    `json:"messageId"`
	Status     string    `json:"status"`
	LastError  string    `json:"lastError,omitempty"`
	EnqueuedAt time.Time `json:"enqueuedAt"`
	CheckedAt  time.Time `json:"checkedAt"`
	NextCheck  time.Time `json:"nextCheck"`
	Stuck      bool      `json:"stuck,omitempty"`
}

// EntryOf is a record's line on the board.
func EntryOf(r Record) BoardEntry {
	return BoardEntry{Route: r.Route, Key: r.Key, MessageID: r.MessageID, Status: r.LastStatus, LastError: r.LastError,
		EnqueuedAt: r.EnqueuedAt, CheckedAt: r.LastCheckAt, NextCheck: r.NextCheck, Stuck: !r.StuckReportedAt.IsZero()}
}

// ReadBoard reads the board; an empty one when there is none yet.
func (s *Store) ReadBoard(ctx context.Context) (Board, error) {
	b := Board{Imports: map[string]BoardEntry{}}
	if _, err := s3io.GetJSON(ctx, s.S3, s.Bucket, s.Layout.BoardKey(), &b); err != nil {
		return Board{Imports: map[string]BoardEntry{}}, err
	}
	if b.Imports == nil {
		b.Imports = map[string]BoardEntry{}
	}
	return b, nil
}

// WriteBoard writes the board.
func (s *Store) WriteBoard(ctx context.Context, b Board) error {
	return s3io.PutJSON(ctx, s.S3, s.Bucket, s.Layout.BoardKey(), b)
}

// DeleteBoard removes the board (nothing is in flight).
func (s *Store) DeleteBoard(ctx context.Context) error {
	return s3io.DeleteKey(ctx, s.S3, s.Bucket, s.Layout.BoardKey())
}
