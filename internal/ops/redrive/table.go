package redrive

import (
	"fmt"
	"io"
	"text/tabwriter"
)

// Table writes what moved, in order.
func (r Report) Table(w io.Writer) error {
	if len(r.Moved) == 0 && r.Problem == "" {
		_, err := fmt.Fprintf(w, "the import dead-letter queue is empty: nothing to move\n")
		return err
	}
	fmt.Fprintf(w, "moved %d message%s from the import dead-letter queue back to the import queue, in this order:\n\n",
		len(r.Moved), map[bool]string{true: "", false: "s"}[len(r.Moved) == 1])
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "#\tKIND\tROUTE\tFILE\tGROUP")
	for i, m := range r.Moved {
		file := m.Key
		if m.VersionID != "" {
			file += " (version " + m.VersionID + ")"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", i+1, m.Kind, m.Route, file, m.Group)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if r.Problem != "" {
		_, err := fmt.Fprintf(w, "\nstopped: %s\n", r.Problem)
		return err
	}
	_, err := fmt.Fprintln(w, "\nThey go behind whatever the import queue already holds of their group; the enqueue function takes them from there.")
	return err
}
