package filing

import (
	"context"
	"log/slog"
	"time"

	"github.com/fno-bridge/s3-fno/internal/imports/importmsg"
	"github.com/fno-bridge/s3-fno/internal/shared/layout"
	"github.com/fno-bridge/s3-fno/internal/shared/s3io"
)

// Pointer is a where-index entry (layout.WhereKey): where one version of a
// file dropped under a name was filed, so that the operator's tool finds
// every time a name went through with one listing, without knowing the
// route or the day.
type Pointer struct {
	Name            string `json:"name"`            // the file name: the last element of its key
	Route           string `json:"route,omitempty"` // "" for a file no route took
	SourceKey       string `json:"sourceKey"`       // where it was dropped
	SourceVersionID string `json:"sourceVersionId,omitempty"`
	Identity        string `json:"identity"`
	// Outcome is processed, failed or rejected; Key where the file is now
	// and Document the result or reason document beside it.
	Outcome  string            `json:"outcome"`
	Key      string            `json:"key"`
	Document string            `json:"document"`
	Status   string            `json:"status,omitempty"` // F&O's final status, or the reason code
	FiledAt  time.Time         `json:"filedAt"`
	ReplayOf *importmsg.Replay `json:"replayOf,omitempty"`
}

// OutcomeRejected is a Pointer's outcome for a file filed under rejected/.
const OutcomeRejected = "rejected"

// Index writes a Pointer for every file filed (Observers.Index). A pointer
// that cannot be written is logged and the work goes on: the file is
// filed either way, and its key still finds it.
type Index struct {
	S3     s3io.Putter
	Bucket string
	Layout layout.Layout
	Log    *slog.Logger
}

// put writes p at its key; a nil Index writes nothing.
func (x *Index) put(ctx context.Context, p Pointer) {
	if x == nil || x.S3 == nil || p.Identity == "" {
		return
	}
	key := x.Layout.WhereKey(p.Name, p.Identity)
	if err := s3io.PutJSON(ctx, x.S3, x.Bucket, key, p); err != nil && x.Log != nil {
		x.Log.WarnContext(ctx, "where index: pointer not written; the file is filed all the same", "key", p.SourceKey,
			"identity", p.Identity, "pointer", key, "error", err.Error())
	}
}
