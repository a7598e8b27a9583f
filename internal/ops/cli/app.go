package cli

import (
	"fmt"
	"io"

	"github.com/fno-bridge/s3-fno/internal/ops/replay"
	"github.com/fno-bridge/s3-fno/internal/shared/layout"
)

// layout is the deployment's bucket layout; the bucket must be known.
func (a *App) layout() (layout.Layout, error) {
	if err := a.Stack.NeedBucket(); err != nil {
		return layout.Layout{}, err
	}
	return a.Stack.Layout()
}

// replayed is a replay's result for people.
type replayed replay.Result

func (r replayed) Table(w io.Writer) error {
	_, err := fmt.Fprintf(w, "replayed %s (%s)\n  as %s, version %s\n  identity %s (was %s)\n"+
		"It goes through like a dropped file; its result or reason document will say replayOf %s.\n",
		r.From, r.Outcome, r.Key, r.VersionID, r.Identity, r.ReplayOf.Identity, r.From)
	return err
}
