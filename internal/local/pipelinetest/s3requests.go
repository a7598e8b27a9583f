package pipelinetest

import (
	"net/http"
	"strings"
)

// S3Request names an S3 request made through the SDK ("PutObject",
// "ListObjectsV2", ...) and reports whether its key contains one of mine:
// whether it is one file's own request (its object, markers, records)
// rather than one a run makes for every file. Request counters in tests and
// benchmarks sort requests with it.
func S3Request(r *http.Request, mine []string) (op string, own bool) {
	q := r.URL.Query()
	op = q.Get("x-id")
	switch {
	case op != "":
	case r.Method == http.MethodHead:
		op = "HeadObject"
	case q.Has("list-type"):
		op = "ListObjectsV2"
	case q.Has("versions"):
		op = "ListObjectVersions"
	default:
		op = r.Method + " " + r.URL.Path
	}
	_, key, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	for _, m := range mine {
		if key != "" && strings.Contains(key, m) {
			return op, true
		}
	}
	return op, false
}
