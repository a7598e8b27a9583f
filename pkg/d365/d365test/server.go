package d365test

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"
)

// host says which listener a request arrived on.
type host int

const (
	hostFO host = iota
	hostEntra
	hostBlob
	hostForeign
)

func (h host) String() string {
	return [...]string{"fo", "entra", "blob", "foreign"}[h]
}

// call is what the shared front door learned about a request before
// handing it to an endpoint handler.
type call struct {
	endpoint string
	seg      []string // path segments after routing prefixes
	fault    *Fault   // a behavioural fault (no Status) that matched, or nil
	appID    string   // the bearer token's client ID (F&O only)
}

type handlerFunc func(w http.ResponseWriter, r *http.Request, c *call)

type route struct {
	endpoint string
	seg      []string
	h        handlerFunc
	auth     bool
}

// handler is the front door of one listener: route, count, apply faults,
// authenticate, then run the endpoint handler.
func (e *Emulator) handler(h host) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &recorder{ResponseWriter: w}
		rt := e.route(h, r)
		e.mu.Lock()
		e.st.requests[rt.endpoint]++
		if h == hostFO {
			e.st.total++
		}
		if r.Header.Get("Authorization") != "" {
			switch h {
			case hostBlob:
				e.st.blobSawToken = true
			case hostForeign:
				e.st.foreignSawToken = true
			}
		}
		f := e.takeFaultLocked(h, rt.endpoint)
		fn := e.st.faultFunc
		e.mu.Unlock()
		if f == nil && fn != nil {
			if ff := fn(rt.endpoint, r); ff != nil {
				c := *ff
				f = &c
			}
		}
		if f != nil && f.Status != 0 {
			e.mu.Lock()
			e.st.faulted[rt.endpoint]++
			e.mu.Unlock()
		}
		defer func() {
			e.logf("d365test: %s %s %s -> %d (%s)", h, r.Method, redactedURL(r.URL), rec.code(), rt.endpoint)
		}()

		if f != nil && f.Status != 0 {
			if !sleepCtx(r.Context(), e.done, f.Delay) {
				panic(http.ErrAbortHandler) // the client or the emulator gave up: answer nothing
			}
			e.writeFault(rec, r, h, f)
			return
		}
		c := &call{endpoint: rt.endpoint, seg: rt.seg, fault: f}
		var out http.ResponseWriter = rec
		var dw *delayWriter
		if f != nil && f.Delay > 0 {
			dw = &delayWriter{ResponseWriter: rec, ctx: r.Context(), done: e.done, d: f.Delay}
			out = dw
		}
		if rt.auth {
			app, ok := e.authenticate(r)
			if !ok {
				e.unauthorized(out, http.StatusUnauthorized)
				return
			}
			c.appID = app
		}
		rt.h(out, r, c)
		if dw != nil {
			dw.wait()
		}
	})
}

func (e *Emulator) route(h host, r *http.Request) route {
	seg := splitPath(r.URL.Path)
	switch h {
	case hostEntra:
		return e.entraRoute(r, seg)
	case hostBlob:
		if len(seg) >= 2 && seg[0] == "dmf" {
			switch comp := r.URL.Query().Get("comp"); {
			case r.Method == http.MethodPut && comp == "block":
				return route{endpoint: "blob-put-block", seg: seg, h: e.blobPutBlock}
			case r.Method == http.MethodPut && comp == "blocklist":
				return route{endpoint: "blob-put-block-list", seg: seg, h: e.blobPutBlockList}
			case comp != "":
				return route{endpoint: "blob-other", h: blobUnsupported}
			}
			switch r.Method {
			case http.MethodPut:
				return route{endpoint: "blob-put", seg: seg, h: e.blobPut}
			case http.MethodGet, http.MethodHead:
				return route{endpoint: "blob-get", seg: seg, h: e.blobGet}
			}
		}
		return route{endpoint: "blob-other", h: blobUnsupported}
	case hostForeign:
		if len(seg) == 4 && strings.EqualFold(seg[2], "download") {
			return route{endpoint: "foreign-download", seg: seg, h: e.foreignDownload}
		}
		return route{endpoint: "foreign-other", h: notFound}
	}
	return e.foRoute(r, seg)
}

var langRE = regexp.MustCompile(`^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$`)

// foRoute maps an F&O path to its endpoint. It accepts Microsoft's optional
// /{lang}/ prefix (/en/api/connector/...).
func (e *Emulator) foRoute(r *http.Request, seg []string) route {
	if e.opts.OnPremises {
		return e.onPremisesRoute(r, seg)
	}
	return e.cloudRoute(r, seg)
}

// onPremisesRoute maps an on-premises environment's paths: the OData
// actions under /namespaces/AXSF, the connector redirected to the sign-in.
func (e *Emulator) onPremisesRoute(r *http.Request, seg []string) route {
	if len(seg) >= 2 && strings.EqualFold(seg[0], "namespaces") && strings.EqualFold(seg[1], OnPremisesNamespace) {
		if rt := e.cloudRoute(r, seg[2:]); len(seg) > 2 && strings.EqualFold(seg[2], "data") {
			return rt
		}
	}
	if rt := e.cloudRoute(r, seg); rt.endpoint != "unknown" && len(rt.seg) > 0 && strings.EqualFold(rt.seg[0], "api") {
		return route{endpoint: rt.endpoint, seg: rt.seg, h: e.onPremisesRedirect}
	}
	return route{endpoint: "unknown", seg: seg, h: notFound, auth: true}
}

// cloudRoute maps a cloud environment's F&O paths.
func (e *Emulator) cloudRoute(r *http.Request, seg []string) route {
	if len(seg) >= 2 && langRE.MatchString(seg[0]) && (strings.EqualFold(seg[1], "api") || strings.EqualFold(seg[1], "data")) {
		seg = seg[1:]
	}
	if len(seg) == 4 && strings.EqualFold(seg[0], "api") && strings.EqualFold(seg[1], "connector") {
		op := strings.ToLower(seg[2])
		method := map[string]string{"enqueue": http.MethodPost, "dequeue": http.MethodGet,
			"download": http.MethodGet, "ack": http.MethodPost, "jobstatus": http.MethodGet}[op]
		ah := map[string]activityHandler{"enqueue": e.enqueue, "dequeue": e.dequeue,
			"download": e.download, "ack": e.ack, "jobstatus": e.jobStatus}[op]
		if ah != nil {
			h := e.forActivity(ah)
			if r.Method != method && !(method == http.MethodGet && r.Method == http.MethodHead) {
				h = methodNotAllowed(method)
			}
			return route{endpoint: op, seg: seg, h: h, auth: true}
		}
	}
	const actionPrefix = "Microsoft.Dynamics.DataEntities."
	if len(seg) == 3 && strings.EqualFold(seg[0], "data") && seg[1] == "DataManagementDefinitionGroups" &&
		strings.HasPrefix(seg[2], actionPrefix) {
		name := strings.TrimPrefix(seg[2], actionPrefix)
		h := e.odataAction(name)
		if r.Method != http.MethodPost {
			h = methodNotAllowed(http.MethodPost)
		}
		return route{endpoint: name, seg: seg, h: h, auth: true}
	}
	return route{endpoint: "unknown", seg: seg, h: notFound, auth: true}
}

func splitPath(p string) []string {
	p = strings.Trim(p, "/")
	if p == "" {
		return nil
	}
	return strings.Split(p, "/")
}

// redactedURL is the request URL for logs: SAS signatures and query values
// that could be credentials are blanked.
func redactedURL(u *url.URL) string {
	if u.RawQuery == "" {
		return u.Path
	}
	q := u.Query()
	for k := range q {
		switch strings.ToLower(k) {
		case "sig", "client_secret", "client_assertion", "access_token", "code":
			q.Set(k, "REDACTED")
		}
	}
	return u.Path + "?" + q.Encode()
}

func notFound(w http.ResponseWriter, _ *http.Request, _ *call) {
	http.Error(w, "Not Found", http.StatusNotFound)
}

func methodNotAllowed(allow string) handlerFunc {
	return func(w http.ResponseWriter, _ *http.Request, _ *call) {
		w.Header().Set("Allow", allow)
		http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
	}
}

// sleepCtx waits d, or until the request is gone or the emulator closes.
// It reports whether the full d passed.
func sleepCtx(ctx context.Context, done <-chan struct{}, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-done:
		return false
	}
}

// recorder remembers the status for the request log and passes Flush
// through, which streamed downloads need.
type recorder struct {
	http.ResponseWriter
	status int
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

func (r *recorder) Flush() { http.NewResponseController(r.ResponseWriter).Flush() }

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (r *recorder) code() int {
	if r.status == 0 {
		return http.StatusOK
	}
	return r.status
}

// delayWriter holds a response back: the first write waits d (or until the
// client gives up), after the handler's side effects have happened.
type delayWriter struct {
	http.ResponseWriter
	ctx  context.Context
	done <-chan struct{}
	d    time.Duration
	once sync.Once
	dead bool
}

// wait sleeps once. If the client or the emulator gives up first, the
// connection is dropped: no answer at all, as from a server that hung.
func (w *delayWriter) wait() {
	w.once.Do(func() { w.dead = !sleepCtx(w.ctx, w.done, w.d) })
	if w.dead {
		panic(http.ErrAbortHandler)
	}
}

func (w *delayWriter) WriteHeader(code int) {
	w.wait()
	w.ResponseWriter.WriteHeader(code)
}

func (w *delayWriter) Write(b []byte) (int, error) {
	w.wait()
	return w.ResponseWriter.Write(b)
}

func (w *delayWriter) Flush() {
	w.wait()
	http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *delayWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
