package failures

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/fno-bridge/s3-fno/internal/shared/layout"
)

// Table writes the failures for people: one line each, newest first, with
// its first error rows below it.
func (r Report) Table(w io.Writer) error {
	scope := "any route"
	if r.Route != "" {
		scope = "route " + r.Route
	}
	if len(r.Failures) == 0 {
		_, err := fmt.Fprintf(w, "no failed or rejected files since %s (%s)\n", r.Since.Format(time.RFC3339), scope)
		return err
	}
	fmt.Fprintf(w, "%d failed or rejected since %s (%s), newest first\n\n", len(r.Failures), r.Since.Format(time.RFC3339), scope)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FILED AT\tOUTCOME\tROUTE\tFILE\tSTATUS")
	for _, g := range r.Failures {
		route := g.Route
		if route == "" { // _unrouted, _malformed or an export job: the folders say which
			route = layout.Unrouted
			parts := strings.SplitN(g.Key, "/", 4)
			if len(parts) >= 3 {
				route = parts[1]
			}
			if len(parts) == 4 && parts[1] == layout.ExportsFolder {
				route = "export job " + parts[2]
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", g.At.UTC().Format(time.RFC3339), g.Outcome, route, g.Key, g.Line())
		for _, row := range g.Rows() {
			fmt.Fprintf(tw, "\t\t\t\t  %s\n", row)
		}
	}
	return tw.Flush()
}
