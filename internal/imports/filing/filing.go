// Package filing is how a file ends in the S3 layout: moved to processed/,
// failed/ or rejected/ with a document beside it that says why, or, for a
// queue message nobody can use, kept under rejected/_malformed/.
//
// The router, the enqueue function and the poller all file, so the
// documents (Result, Reason) and the order of the steps live here, in one
// place that none of them owns. The documents are read by people and
// named in the docs: their JSON field names and keys are a contract.
package filing

import (
	"context"
	"errors"

	"github.com/fno-bridge/s3-fno/internal/shared/s3io"
)

// S3 is what filing calls: a server-side copy of the exact version, the
// document written beside it, and the delete of the source.
type S3 interface {
	s3io.Copier
	s3io.Putter
	s3io.Deleter
}

// Move is one file to file: the exact source version, where it may go, and
// the suffix of the document written beside it.
type Move struct {
	Src s3io.Ref
	// SrcHead is what the caller knows of Src from reading that version
	// (size, content type, user metadata): the copy then does not ask S3
	// again. Nil: it does.
	SrcHead *s3io.Head
	// Candidates are the destination keys, first choice first
	// (s3io.Candidates).
	Candidates []string
	// Token is the source's identity, stamped on the copy: a repeat after
	// a crash finds its own copy instead of placing a second one.
	Token string
	// Meta is more user metadata for the copy.
	Meta map[string]string
	// Suffix follows the placed key to name the document
	// (layout.ResultSuffix, layout.ReasonSuffix).
	Suffix string
	// KeepDocumentWhenGone: when the source is gone and no copy of it was
	// placed, still write the document, at the first candidate no object
	// holds (the poller keeps F&O's verdict on a file someone removed).
	// Without it File returns an error that is s3io.ErrSourceGone.
	KeepDocumentWhenGone bool
}

// File places m.Src at the first free candidate, writes the document that
// doc returns beside it, and only then deletes the source. The order is
// what makes filing safe to repeat: a run that dies anywhere leaves the
// source in place, and the next run finds its copy by m.Token and writes
// the document again. doc gets the key the file was placed at and whether
// the source was gone (only with m.KeepDocumentWhenGone); it may write
// more beside the file before it returns (the poller copies F&O's error
// files there). File returns the placed key.
func File(ctx context.Context, c S3, m Move, doc func(placed string, gone bool) (any, error)) (string, error) {
	placed, err := s3io.PlaceKnown(ctx, c, m.Src, m.SrcHead, m.Candidates, m.Token, m.Meta)
	gone := errors.Is(err, s3io.ErrSourceGone)
	switch {
	case gone && m.KeepDocumentWhenGone:
		// Place has checked that no candidate holds this file's copy; take
		// the first that holds nothing, or else the last.
		placed = m.Candidates[len(m.Candidates)-1]
		for _, k := range m.Candidates[:len(m.Candidates)-1] {
			taken, _, err := s3io.Exists(ctx, c, m.Src.Bucket, k)
			if err != nil {
				return "", err
			}
			if !taken {
				placed = k
				break
			}
		}
	case err != nil:
		return "", err
	}
	d, err := doc(placed, gone)
	if err != nil {
		return "", err
	}
	if err := s3io.PutJSON(ctx, c, m.Src.Bucket, placed+m.Suffix, d); err != nil {
		return "", err
	}
	if err := s3io.Delete(ctx, c, m.Src); err != nil {
		return "", err
	}
	return placed, nil
}
