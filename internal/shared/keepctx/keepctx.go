// Package keepctx gives the last steps of a piece of work a context of
// their own, one that stopping the work (cancelling it, or its deadline)
// does not end, so that what was done is still told and tidied up.
package keepctx

import (
	"context"
	"time"
)

// Until returns a context with ctx's values that is not cancelled with
// ctx and ends at ctx's deadline or atLeast from now, whichever is later:
// a parent stopped early leaves its steps at least atLeast, and one with
// time left does not cut them short.
func Until(ctx context.Context, atLeast time.Duration) (context.Context, context.CancelFunc) {
	end := time.Now().Add(atLeast)
	if d, ok := ctx.Deadline(); ok && d.After(end) {
		end = d
	}
	return context.WithDeadline(context.WithoutCancel(ctx), end)
}
