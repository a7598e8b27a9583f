// Package metrics writes CloudWatch metrics as Embedded Metric Format
// (EMF) lines into the function's log stream, where CloudWatch extracts
// them: no PutMetricData call, nothing on the hot path but a log line per
// invocation and dimension set. Catalog lists every metric the code writes,
// so alarms and the dashboard can be checked against it.
package metrics

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"sync"
	"time"
)

// Namespace is the CloudWatch namespace of every metric.
const Namespace = "S3FnO"

// Unit is a CloudWatch unit.
type Unit string

// The units used.
const (
	Count        Unit = "Count"
	Milliseconds Unit = "Milliseconds"
	Seconds      Unit = "Seconds"
	Bytes        Unit = "Bytes"
)

// Dimension names. Every metric has Stack; the others are few per stack,
// so the number of series never grows with the number of files.
const (
	Stack    = "Stack"
	Route    = "Route"
	Job      = "Job"
	Function = "Function"
)

// Def is one metric: its unit and its dimension sets.
type Def struct {
	Name string
	Unit Unit
	// Dims are the dimension sets it is written with; the Stack-only set
	// lets an alarm cover every route or job at once.
	Dims [][]string
}

var (
	perRoute    = [][]string{{Stack, Route}, {Stack}}
	perJob      = [][]string{{Stack, Job}, {Stack}}
	perFunction = [][]string{{Stack, Function}, {Stack}}
	perStack    = [][]string{{Stack}}
)

// Catalog is every metric written.
var Catalog = []Def{
	{"FilesRouted", Count, perRoute},           // released to the FIFO queue, in drop order
	{"FilesEnqueued", Count, perRoute},         // accepted by F&O
	{"FilesProcessed", Count, perRoute},        // filed under processed/
	{"FilesFailed", Count, perRoute},           // filed under failed/
	{"FilesRejected", Count, perRoute},         // filed under rejected/
	{"FilesStuck", Count, perRoute},            // newly reported stuck
	{"FilesHeld", Count, perRoute},             // packages waiting in inbound/ while a package import of their scope is in flight
	{"ImportsInFlight", Count, perRoute},       // released and not filed yet
	{"OldestImportAge", Seconds, perRoute},     // age of the oldest of those
	{"EnqueueLatency", Milliseconds, perRoute}, // one enqueue call, body included
	{"FnoThrottled", Count, perFunction},       // F&O answers 429
	{"FnoServerErrors", Count, perFunction},    // F&O answers 5xx
	{"NotificationsSent", Count, perFunction},
	{"NotificationsFailed", Count, perFunction},
	{"ExportsLanded", Count, perJob},
	{"ExportBytes", Bytes, perJob},
	{"ExportFailures", Count, perJob},
	{"ExportsAcked", Count, perJob},
	{"PollerRecordsChecked", Count, perStack},
	{"PollerFnoRequests", Count, perStack},
	{"PollerBudgetPerMinute", Count, perStack},
	{"PollerRunDuration", Milliseconds, perStack},
	{"PollerRecordsDeferred", Count, perStack},
	{"ConfigRejected", Count, perStack}, // a configuration document refused
}

// Lookup finds a metric of the catalog.
func Lookup(name string) (Def, bool) {
	i := slices.IndexFunc(Catalog, func(d Def) bool { return d.Name == name })
	if i < 0 {
		return Def{}, false
	}
	return Catalog[i], true
}

// Recorder collects an invocation's metrics and writes them as EMF lines
// (Flush). It is safe for concurrent use. A Recorder whose stack is "" still
// writes (local runs); a nil Recorder records nothing.
type Recorder struct {
	stack string
	w     io.Writer
	now   func() time.Time

	mu   sync.Mutex
	sets map[string]*series // by the dimension values
}

// series is the values of one dimension set.
type series struct {
	dims    map[string]string
	values  map[string]float64
	samples map[string][]float64
}

// New is a Recorder for a stack writing to w (os.Stdout when nil).
func New(stack string, w io.Writer) *Recorder {
	if w == nil {
		w = os.Stdout
	}
	return &Recorder{stack: stack, w: w, now: time.Now, sets: map[string]*series{}}
}

// FromEnv is a Recorder for STACK_NAME writing to stdout.
func FromEnv(getenv func(string) string) *Recorder { return New(getenv("STACK_NAME"), nil) }

// Add adds v to a metric, with the dimensions given as name, value pairs
// (Stack is added). Metrics not in Catalog are refused with a panic: they
// would be alarms and dashboards nobody sees.
func (r *Recorder) Add(name string, v float64, dims ...string) {
	if r == nil {
		return
	}
	s := r.series(name, dims)
	defer r.mu.Unlock()
	s.values[name] += v
}

// Set is Add for a gauge: the value replaces what was recorded.
func (r *Recorder) Set(name string, v float64, dims ...string) {
	if r == nil {
		return
	}
	s := r.series(name, dims)
	defer r.mu.Unlock()
	s.values[name] = v
}

// Observe records one sample of a metric whose statistics (average,
// percentiles) matter, such as a latency.
func (r *Recorder) Observe(name string, v float64, dims ...string) {
	if r == nil {
		return
	}
	s := r.series(name, dims)
	defer r.mu.Unlock()
	if len(s.samples[name]) < maxSamples {
		s.samples[name] = append(s.samples[name], v)
	}
}

// maxSamples is EMF's limit on the values of one metric in one line.
const maxSamples = 100

// series is the dimension set's series, with r.mu held.
func (r *Recorder) series(name string, dims []string) *series {
	if _, ok := Lookup(name); !ok {
		panic("metrics: " + name + " is not in the catalog")
	}
	if len(dims)%2 != 0 {
		panic("metrics: dimensions come in name, value pairs")
	}
	d := map[string]string{Stack: r.stack}
	for i := 0; i < len(dims); i += 2 {
		d[dims[i]] = dims[i+1]
	}
	key := fmt.Sprint(sortedPairs(d))
	r.mu.Lock()
	s := r.sets[key]
	if s == nil {
		s = &series{dims: d, values: map[string]float64{}, samples: map[string][]float64{}}
		r.sets[key] = s
	}
	return s
}

func sortedPairs(d map[string]string) []string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(d)) {
		out = append(out, k+"="+d[k])
	}
	return out
}

// Flush writes one EMF line per dimension set recorded since the last
// Flush, and forgets them.
func (r *Recorder) Flush() {
	if r == nil {
		return
	}
	r.mu.Lock()
	sets := r.sets
	r.sets = map[string]*series{}
	r.mu.Unlock()
	for _, key := range slices.Sorted(maps.Keys(sets)) {
		line, err := emf(sets[key], r.now())
		if err != nil {
			continue
		}
		// One write per line: it is not interleaved with the log lines.
		r.w.Write(line)
	}
}

// directive is the _aws member of an EMF line.
type directive struct {
	Timestamp         int64       `json:"Timestamp"`
	CloudWatchMetrics []metricSet `json:"CloudWatchMetrics"`
}

type metricSet struct {
	Namespace  string       `json:"Namespace"`
	Dimensions [][]string   `json:"Dimensions"`
	Metrics    []metricName `json:"Metrics"`
}

type metricName struct {
	Name string `json:"Name"`
	Unit Unit   `json:"Unit"`
}

// emf is one EMF line: the directive, then the dimension values and the
// metric values as members of the root object. A metric is declared with
// the dimension sets of its Def that this series has every dimension of.
func emf(s *series, at time.Time) ([]byte, error) {
	root := map[string]any{}
	for k, v := range s.dims {
		root[k] = v
	}
	bySets := map[string]*metricSet{}
	var order []string
	names := slices.Sorted(maps.Keys(s.values))
	for name := range s.samples {
		if _, counted := s.values[name]; !counted {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	for _, name := range names {
		def, _ := Lookup(name)
		if vs := s.samples[name]; len(vs) > 0 {
			root[name] = vs
		} else {
			root[name] = s.values[name]
		}
		var sets [][]string
		for _, ds := range def.Dims {
			if hasAll(s.dims, ds) {
				sets = append(sets, ds)
			}
		}
		key := fmt.Sprint(sets)
		if bySets[key] == nil {
			bySets[key] = &metricSet{Namespace: Namespace, Dimensions: sets}
			order = append(order, key)
		}
		bySets[key].Metrics = append(bySets[key].Metrics, metricName{Name: name, Unit: def.Unit})
	}
	d := directive{Timestamp: at.UnixMilli()}
	for _, k := range order {
		d.CloudWatchMetrics = append(d.CloudWatchMetrics, *bySets[k])
	}
	root["_aws"] = d
	b, err := json.Marshal(root)
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// hasAll: the series has a value for every dimension of set.
func hasAll(dims map[string]string, set []string) bool {
	for _, d := range set {
		if _, ok := dims[d]; !ok {
			return false
		}
	}
	return true
}
