// Command report turns the output of bench/run.sh (benchmark lines, one
// sub-case per process, throughput pairs repeated) into bench/RESULTS.md:
// a table per benchmark with medians and ratios to the baseline measured in
// the same run, sentences computed from those numbers, and which goals are
// met.
//
//	go run ./bench/report -raw raw.txt -out bench/RESULTS.md
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"gonum.org/v1/plot/plotter"
)

func main() {
	raw := flag.String("raw", "", "benchmark output (lines starting with Benchmark)")
	out := flag.String("out", "bench/RESULTS.md", "report to write")
	sizes := flag.String("sizes", "16MiB 256MiB 1GiB", "sizes run")
	repeat := flag.Int("repeat", 5, "runs per throughput pair")
	took := flag.String("took", "", "how long the run took")
	idle := flag.Int("idle", 25, "the CPU use (%) below which the harness starts a process (BENCH_IDLE)")
	seriesDir := flag.String("series", "", "folder of the time series BenchmarkPollSchedule wrote (BENCH_SERIES_DIR)")
	noCharts := flag.Bool("no-charts", false, "write no SVG charts beside the report")
	flag.Parse()
	f, err := os.Open(*raw)
	if err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
	res, busy, err := parse(f)
	date := time.Now()
	if st, err := f.Stat(); err == nil {
		date = st.ModTime() // when the run wrote its last result
	}
	f.Close()
	if err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
	r := &report{res: res, busy: busy, date: date, sizes: strings.Fields(*sizes), repeat: *repeat, took: *took, idle: *idle,
		series: *seriesDir}
	if !*noCharts {
		r.charts = filepath.Dir(*out)
	}
	if err := os.WriteFile(*out, []byte(r.render()), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
}

// results maps a benchmark name (without the -GOMAXPROCS suffix) to its
// runs in the order they ran, each a unit → value map ("ns/op", "MB/s",
// "B/op", custom units, and "N", the iterations).
type results map[string][]map[string]float64

// busyness is the harness's "# busy B waited S pattern" lines: how busy
// the machine was before each process started, and how long the harness
// waited for it to calm down.
type busyness struct {
	pct, waited []float64
}

func parse(r io.Reader) (results, busyness, error) {
	res := results{}
	var busy busyness
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 3 && f[0] == "#" && f[1] == "busy" {
			v, _ := strconv.ParseFloat(f[2], 64)
			busy.pct = append(busy.pct, v)
			if len(f) >= 5 && f[3] == "waited" {
				w, _ := strconv.ParseFloat(f[4], 64)
				busy.waited = append(busy.waited, w)
			}
			continue
		}
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		n, err := strconv.Atoi(f[1])
		if err != nil {
			continue // not a result line (a log line that starts with the name)
		}
		name := f[0]
		if i := strings.LastIndex(name, "-"); i > 0 {
			if _, err := strconv.Atoi(name[i+1:]); err == nil {
				name = name[:i]
			}
		}
		m := map[string]float64{"N": float64(n)}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				return nil, busy, fmt.Errorf("%q: %w", sc.Text(), err)
			}
			m[f[i+1]] = v
		}
		res[name] = append(res[name], m)
	}
	return res, busy, sc.Err()
}

func median(vs []float64) float64 {
	sort.Float64s(vs)
	if len(vs)%2 == 1 {
		return vs[len(vs)/2]
	}
	return (vs[len(vs)/2-1] + vs[len(vs)/2]) / 2
}

// pairRatio is the median over the alternating runs of target MB/s over
// the baseline MB/s measured just before it.
func (res results) pairRatio(target, baseline string) float64 {
	t, b := res[target], res[baseline]
	var rs []float64
	for i := 0; i < len(t) && i < len(b); i++ {
		if b[i]["MB/s"] > 0 {
			rs = append(rs, t[i]["MB/s"]/b[i]["MB/s"])
		}
	}
	if len(rs) == 0 {
		return 0
	}
	return median(rs)
}

// v is the median of a metric over a benchmark's runs, 0 if it has none.
func (res results) v(name, unit string) float64 {
	var vs []float64
	for _, m := range res[name] {
		if v, ok := m[unit]; ok {
			vs = append(vs, v)
		}
	}
	if len(vs) == 0 {
		return 0
	}
	return median(vs)
}

func (res results) has(name string) bool { return len(res[name]) > 0 }

// ran is the names among names for which pre+name has results.
func (res results) ran(pre string, names ...string) []string {
	var out []string
	for _, n := range names {
		if res.has(pre + n) {
			out = append(out, n)
		}
	}
	return out
}

type report struct {
	res    results
	busy   busyness
	date   time.Time
	sizes  []string
	repeat int
	took   string
	idle   int
	b      strings.Builder
	goals  [][]string // every goal: what, verdict
	open   []string   // the current section's goal lines
	charts string     // where the SVG charts go ("": none)
	series string     // where BenchmarkPollSchedule's time series are
}

func (r *report) p(format string, args ...any) { fmt.Fprintf(&r.b, format, args...) }

// goal records a goal of the current section, met or not. A goal not met
// while other work kept the machine busy says so (the harness's busy
// figures), so that part can be run again on a quiet machine.
func (r *report) goal(met bool, what string) {
	mark := "**met**"
	if !met {
		mark = "**NOT met**"
		if _, hi := r.busiest(); hi >= float64(r.idle) {
			mark += fmt.Sprintf(" (up to %.0f%% of the CPUs were busy with other work when a process of this run started)", hi)
		}
	}
	r.open = append(r.open, fmt.Sprintf("- Goal %s: %s", mark, what))
	r.goals = append(r.goals, []string{what, mark})
}

// unmeasured records a goal this run could not judge, and why.
func (r *report) unmeasured(what, why string) {
	r.open = append(r.open, fmt.Sprintf("- Goal **not measured**: %s (%s)", what, why))
	r.goals = append(r.goals, []string{what, "not measured: " + why})
}

// end ends a section with its goals.
func (r *report) end() {
	for _, g := range r.open {
		r.p("%s\n", g)
	}
	r.open = nil
	r.p("\n")
}

// section starts a section: its heading and what its benchmarks run.
func (r *report) section(title string, setup ...string) {
	r.p("## %s\n\n%s\n\n", title, strings.Join(setup, " "))
}

// table writes a Markdown table: the first column left-aligned, the others
// right-aligned.
func (r *report) table(head []string, rows [][]string) { r.tableLeft(head, 1, rows) }

// tableLeft writes a Markdown table whose first left columns are
// left-aligned and the others right-aligned.
func (r *report) tableLeft(head []string, left int, rows [][]string) {
	r.p("| %s |\n|", strings.Join(head, " | "))
	for i := range head {
		if i < left {
			r.p(" --- |")
		} else {
			r.p(" ---: |")
		}
	}
	r.p("\n")
	for _, row := range rows {
		r.p("| %s |\n", strings.Join(row, " | "))
	}
	r.p("\n")
}

// rows is a table row per key.
func rows(keys []string, row func(key string) []string) [][]string {
	out := make([][]string, len(keys))
	for i, k := range keys {
		out[i] = row(k)
	}
	return out
}

// shows writes a "What this shows" paragraph from sentences.
func (r *report) shows(sentences ...string) {
	var kept []string
	for _, s := range sentences {
		if s != "" {
			kept = append(kept, s)
		}
	}
	if len(kept) > 0 {
		r.p("**What this shows.** %s\n\n", strings.Join(kept, " "))
	}
}

func num(prec int, v float64) string { return strconv.FormatFloat(v, 'f', prec, 64) }

// span is "lo–hi", or one number when both print the same.
func span(prec int, lo, hi float64) string {
	if num(prec, lo) == num(prec, hi) {
		return num(prec, lo)
	}
	return num(prec, lo) + "–" + num(prec, hi)
}

// thou formats a whole number with thousands separators: 14,694.
func thou(v float64) string {
	s := strconv.FormatInt(int64(v+0.5), 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func bytesPerOp(v float64) string {
	switch {
	case v >= 1<<20:
		return fmt.Sprintf("%.1f MiB", v/(1<<20))
	case v >= 1<<10:
		return fmt.Sprintf("%.0f KiB", v/(1<<10))
	}
	return fmt.Sprintf("%.0f B", v)
}

func sizeBytes(s string) float64 {
	for suffix, unit := range map[string]float64{"GiB": 1 << 30, "MiB": 1 << 20, "KiB": 1 << 10} {
		if n, ok := strings.CutSuffix(s, suffix); ok {
			v, _ := strconv.ParseFloat(n, 64)
			return v * unit
		}
	}
	return 0
}

// minMax is the lowest and highest of f over keys.
func minMax(keys []string, f func(string) float64) (lo, hi float64) {
	for i, k := range keys {
		v := f(k)
		if i == 0 || v < lo {
			lo = v
		}
		if i == 0 || v > hi {
			hi = v
		}
	}
	return lo, hi
}

func cpuModel() string {
	raw, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	for _, l := range strings.Split(string(raw), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

func memTotal() string {
	raw, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return "unknown"
	}
	for _, l := range strings.Split(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(l, "MemTotal:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return fmt.Sprintf("%.0f GiB", kb/(1<<20))
		}
	}
	return "unknown"
}

func goVersion() string {
	out, err := exec.Command("go", "version").Output()
	if err != nil {
		return runtime.Version()
	}
	return strings.TrimSpace(string(out))
}

func (r *report) render() string {
	r.p("# Benchmark results\n\n")
	r.p("Written by `make bench` (bench/run.sh, then bench/report). Every sub-benchmark ran in its own process, so each peak RSS ")
	times := fmt.Sprintf("alternately %d times each", r.repeat)
	if r.repeat == 1 {
		times = "once each, the baseline first"
	}
	if counts := r.pairRuns(); counts != "" {
		times = "alternately (" + counts + ")"
	}
	r.p("(VmHWM) is that process's own. Throughput pairs ran %s; every figure is the median of its runs, ", times)
	r.p("and every ratio the median of target ÷ the baseline run just before it. The figures here are asserted by no test; ")
	r.p("of bench/, only `TestPollSchedule` (a deterministic simulation) runs in `make test`.\n\n")
	machine := [][]string{{"date", r.date.UTC().Format("2006-01-02 15:04 UTC")}, {"CPU", cpuModel()},
		{"nproc", strconv.Itoa(runtime.NumCPU())}, {"memory", memTotal()}, {"Go", goVersion()}, {"sizes", strings.Join(r.sizes, ", ")}}
	if r.took != "" {
		machine = append(machine, []string{"run took", r.took})
	}
	r.table([]string{"machine", ""}, machine)
	if b := r.busy.pct; len(b) > 0 {
		over, hi, waited := 0, 0.0, 0.0
		for _, v := range b {
			if v >= float64(r.idle) {
				over++
			}
			hi = max(hi, v)
		}
		for _, w := range r.busy.waited {
			waited += w
		}
		r.p("Before each of the %d processes the harness waited, for a bounded time, until other work used less than %d%% of the CPUs; ", len(b), r.idle)
		r.p("at the starts other work used a median %.0f%% and at most %.0f%%, %d processes started with %d%% or more in use, ",
			median(append([]float64(nil), b...)), hi, over, r.idle)
		r.p("and the waiting took %.0f s in all.\n\n", waited)
	}

	r.imports()
	r.packages()
	r.exports()
	r.memory()
	r.requests()
	r.routing()
	r.release()
	r.poller()
	r.schedule()
	r.coldStart()
	r.configScale()

	r.p("## Goals\n\n")
	r.table([]string{"goal", ""}, r.goals)
	r.p("Reproduce: `make bench`; `BENCH_SIZES=\"16MiB 256MiB\"` and `BENCH_ONLY=\"import export\"` narrow it, and ")
	r.p("`BENCH_S3_CHECKSUM=off` makes the S3 fake return no checksums.\n")
	return r.b.String()
}

// pairs is the sizes for which both target and baseline ran, in size
// order.
func (r *report) pairs(target, baseline string) []string {
	var run []string
	for _, s := range r.res.ran(target, r.sizes...) {
		if r.res.has(baseline + s) {
			run = append(run, s)
		}
	}
	return run
}

// ratios is the lowest and highest pair ratio of target to baseline over
// the sizes.
func (r *report) ratios(target, baseline string, sizes []string) (lo, hi float64) {
	return minMax(sizes, func(s string) float64 { return r.res.pairRatio(target+s, baseline+s) })
}

// flat compares peak RSS (and peak heap, with heap) of pre's first and
// last size: the sentence saying whether memory followed the size, and
// the goal. With one size it says nothing and the goal is unmeasured.
func (r *report) flat(pre, what, goal string, run []string, heap bool) string {
	if len(run) < 2 {
		r.unmeasured(goal, "one size ran")
		return ""
	}
	first, last := run[0], run[len(run)-1]
	rss0, rss1 := r.res.v(pre+first, "peak-RSS-MiB"), r.res.v(pre+last, "peak-RSS-MiB")
	met := rss1 <= rss0*1.25
	figures := fmt.Sprintf("peak RSS %.1f → %.1f MiB", rss0, rss1)
	if heap {
		heap0, heap1 := r.res.v(pre+first, "peak-heap-MiB"), r.res.v(pre+last, "peak-heap-MiB")
		met = met && heap1 <= heap0*1.5+4
		figures += fmt.Sprintf(", peak heap %.1f → %.1f MiB", heap0, heap1)
	}
	verdict := "does not follow"
	if !met {
		verdict = "grows with"
	}
	r.goal(met, fmt.Sprintf("%s: %s from %s to %s", goal, figures, first, last))
	return fmt.Sprintf("From %s to %s the %s grows %.0f-fold; %s: memory %s the size.",
		first, last, what, sizeBytes(last)/sizeBytes(first), figures, verdict)
}

func (r *report) imports() {
	const t, base, nocrc = "BenchmarkImportStreaming/", "BenchmarkImportBaseline/", "BenchmarkImportStreamingNoCRC/"
	run := r.pairs(t, base)
	if len(run) == 0 {
		return
	}
	r.section("Import: S3 → enqueue handler → F&O (`BenchmarkImportStreaming` vs `BenchmarkImportBaseline`)",
		"The real enqueue handler (`enqueue.Handler.Handle` on an SQS FIFO record naming the object) with the real",
		"aws-sdk-go-v2 S3 client (configured as `config.LoadDefaultConfig` does; the handler's GetObject asks for the object's",
		"CRC64NVME and `s3io.GetVerified` checks it while streaming) and the real d365 client, from the server face of the S3 fake",
		"(`internal/local/s3fake`: TLS, generated objects, never held) to the emulator's enqueue endpoint (TLS, hashes what it reads,",
		"keeps nothing). The baseline moves the same bytes between the same two servers with a plain net/http GET whose body is",
		"handed to a plain POST. The diagnostic column is the import against the fake returning no checksum: nothing to verify.")
	r.table([]string{"size", "import MB/s", "baseline MB/s", "ratio", "import, fake without checksums MB/s (ratio)", "import B/op", "baseline B/op",
		"import peak heap MiB", "baseline peak heap MiB", "import peak RSS MiB", "baseline peak RSS MiB"}, rows(run, func(s string) []string {
		diag := "–"
		if r.res.has(nocrc + s) {
			diag = fmt.Sprintf("%.0f (%.2f)", r.res.v(nocrc+s, "MB/s"), r.res.pairRatio(nocrc+s, base+s))
		}
		return []string{s, num(0, r.res.v(t+s, "MB/s")), num(0, r.res.v(base+s, "MB/s")), num(2, r.res.pairRatio(t+s, base+s)), diag,
			bytesPerOp(r.res.v(t+s, "B/op")), bytesPerOp(r.res.v(base+s, "B/op")),
			num(1, r.res.v(t+s, "peak-heap-MiB")), num(1, r.res.v(base+s, "peak-heap-MiB")),
			num(1, r.res.v(t+s, "peak-RSS-MiB")), num(1, r.res.v(base+s, "peak-RSS-MiB"))}
	}))
	lo, hi := r.ratios(t, base, run)
	r.goal(lo >= 0.95, fmt.Sprintf("import throughput ≥ 0.95 × baseline at every size (lowest %.2f)", lo))
	throughput := fmt.Sprintf("Throughput is %s of the baseline", span(2, lo, hi))
	if diag := r.res.ran(nocrc, run...); len(diag) > 0 {
		dlo, dhi := r.ratios(nocrc, base, diag)
		throughput += fmt.Sprintf(", and %s with no checksum to verify", span(2, dlo, dhi))
	}
	lowest := ""
	if len(run) > 1 && lo < hi && r.res.pairRatio(t+run[0], base+run[0]) == lo {
		lowest = fmt.Sprintf("The ratio is lowest at the smallest size, %s, where what the import does per file besides moving bytes "+
			"(the marker and ledger writes) is spread over the fewest bytes.", run[0])
	}
	last := run[len(run)-1]
	r.shows(throughput+".", lowest,
		r.flat(t, "file", "import memory flat", run, true),
		fmt.Sprintf("B/op is per file and includes the in-process servers' allocations: at %s it is %.2f%% of the bytes moved, the baseline's %.2f%%.",
			last, 100*r.res.v(t+last, "B/op")/sizeBytes(last), 100*r.res.v(base+last, "B/op")/sizeBytes(last)))
	r.end()
}

// packages reports BenchmarkPackageImport against BenchmarkPackageBaseline.
func (r *report) packages() {
	const t, base = "BenchmarkPackageImport/", "BenchmarkPackageBaseline/"
	run := r.pairs(t, base)
	if len(run) == 0 {
		return
	}
	r.section("Package import: S3 → enqueue handler → blob storage → ImportFromPackage (`BenchmarkPackageImport` vs `BenchmarkPackageBaseline`)",
		"A plain file on a `dataProject` route with a package template, through the real enqueue handler holding its scope's lock:",
		"read from the S3 fake with the real SDK client (checksum verified while streaming), found to be no package (a ranged GET of",
		"its end), wrapped as it streams in a package built from the template, uploaded to the emulator's blob store in blocks of",
		"the default size (Put Block, Put Block List) at a URL from GetAzureWriteUrl, then imported with ImportFromPackage, with the",
		"marker, ledger record and lock updates. The baseline moves the same bytes between the same two servers with nothing in",
		"between: a plain GET read in blocks of the same size, each sent as a Put Block, then Put Block List.")
	r.table([]string{"size", "package import MB/s", "baseline MB/s", "ratio", "import B/op", "baseline B/op",
		"import peak heap MiB", "baseline peak heap MiB", "import peak RSS MiB", "baseline peak RSS MiB"}, rows(run, func(s string) []string {
		return []string{s, num(0, r.res.v(t+s, "MB/s")), num(0, r.res.v(base+s, "MB/s")), num(2, r.res.pairRatio(t+s, base+s)),
			bytesPerOp(r.res.v(t+s, "B/op")), bytesPerOp(r.res.v(base+s, "B/op")),
			num(1, r.res.v(t+s, "peak-heap-MiB")), num(1, r.res.v(base+s, "peak-heap-MiB")),
			num(1, r.res.v(t+s, "peak-RSS-MiB")), num(1, r.res.v(base+s, "peak-RSS-MiB"))}
	}))
	lo, hi := r.ratios(t, base, run)
	r.shows(fmt.Sprintf("The package import reaches %s of the baseline's throughput; what it does besides moving the bytes is the "+
		"wrapping (a zip that stores the file, written through a pipe with its CRC-32) and the per-package requests.", span(2, lo, hi)),
		r.flat(t, "file", "package import memory flat", run, true))
	r.goal(lo >= 0.9, fmt.Sprintf("package import throughput ≥ 0.9 × baseline at every size (lowest %.2f)", lo))
	r.end()
}

func (r *report) exports() {
	const t, base, dl = "BenchmarkExportLanding/", "BenchmarkExportBaseline/", "BenchmarkExportDownload/"
	run := r.pairs(t, base)
	if len(run) == 0 {
		return
	}
	part, conc, limit := r.res.v(t+run[0], "part-MiB"), r.res.v(t+run[0], "concurrency"), r.res.v(t+run[0], "memlimit-MiB")
	bound := part*conc + 32
	r.section("Export: F&O → dequeue handler → S3 (`BenchmarkExportLanding` vs `BenchmarkExportBaseline`)",
		"The real dequeue handler (`dequeue.Handler.Run`: dequeue, download, idempotency marker, multipart upload through",
		"`internal/exports/s3upload` (part buffers pooled across uploads) with If-None-Match, marker update, ack)",
		fmt.Sprintf("with the default part size (%.0f MiB) and concurrency (%.0f), from the emulator's download (a generated export,", part, conc),
		"never held) to the S3 fake's multipart sink (parts decoded, counted, dropped), under the soft memory limit the dequeue",
		fmt.Sprintf("function sets at start (`dequeue.ApplyMemoryLimit`: %.0f MiB here).", limit),
		"The baseline streams the same download from the same emulator to the same S3 fake with a plain SDK multipart upload",
		"of the same part size and concurrency (CreateMultipartUpload, an io.Copy of the download into each part's buffer and",
		"an UploadPart with the SDK's CRC32, CompleteMultipartUpload; no marker, no If-None-Match, no ack). The download column",
		"reads the same export into io.Discard (dequeue, download, ack): what the F&O side alone allows. Peak heap is HeapInuse",
		"(live objects and garbage not yet collected); peak live heap is what the GC found live (`/gc/heap/live:bytes`).")
	r.table([]string{"size", "landing MB/s", "baseline MB/s", "ratio", "download only MB/s", "landing ÷ download", "landing B/op", "baseline B/op",
		"peak heap MiB", "peak live heap MiB", "bound MiB", "landing peak RSS MiB", "baseline peak RSS MiB", "download peak RSS MiB"},
		rows(run, func(s string) []string {
			dlMBs, dlRatio, dlRSS := "–", "–", "–"
			if r.res.has(dl + s) {
				dlMBs, dlRatio, dlRSS = num(0, r.res.v(dl+s, "MB/s")), num(2, r.res.pairRatio(t+s, dl+s)), num(1, r.res.v(dl+s, "peak-RSS-MiB"))
			}
			return []string{s, num(0, r.res.v(t+s, "MB/s")), num(0, r.res.v(base+s, "MB/s")), num(2, r.res.pairRatio(t+s, base+s)),
				dlMBs, dlRatio, bytesPerOp(r.res.v(t+s, "B/op")), bytesPerOp(r.res.v(base+s, "B/op")),
				num(1, r.res.v(t+s, "peak-heap-MiB")), num(1, r.res.v(t+s, "peak-live-MiB")), num(0, bound),
				num(1, r.res.v(t+s, "peak-RSS-MiB")), num(1, r.res.v(base+s, "peak-RSS-MiB")), dlRSS}
		}))
	lo, hi := r.ratios(t, base, run)
	_, heap := minMax(run, func(s string) float64 { return r.res.v(t+s, "peak-heap-MiB") })
	_, live := minMax(run, func(s string) float64 { return r.res.v(t+s, "peak-live-MiB") })
	r.goal(lo >= 0.9, fmt.Sprintf("export landing ≥ 0.9 × the plain multipart upload at every size (lowest %.2f)", lo))
	r.goal(heap <= bound, fmt.Sprintf("export heap in use (live + uncollected garbage) ≤ part size × concurrency + 32 MiB = %.0f MiB at every size (highest %.1f MiB)", bound, heap))
	r.goal(live <= bound, fmt.Sprintf("export live heap ≤ %.0f MiB (highest %.1f MiB)", bound, live))
	where := map[[2]bool]string{{true, true}: "both within", {true, false}: "the live heap within and the heap in use above",
		{false, false}: "both above"}[[2]bool{live <= bound, heap <= bound}]
	if where == "" {
		where = "the heap in use within and the live heap above"
	}
	same := ""
	if limit == bound {
		same = ", the soft memory limit"
	}
	download := ""
	if dls := r.res.ran(dl, run...); len(dls) > 0 {
		dlo, dhi := r.ratios(t, dl, dls)
		download = fmt.Sprintf("Against the download alone it reaches %s: the rest is the upload's own cost (TLS, the CRC32 and aws-chunked framing, the S3 side), which the baseline pays too.", span(2, dlo, dhi))
	}
	bop := fmt.Sprintf("B/op is %s per file (the baseline's %s).", bytesPerOp(r.res.v(t+run[0], "B/op")), bytesPerOp(r.res.v(base+run[0], "B/op")))
	if last := run[len(run)-1]; len(run) > 1 {
		bop = fmt.Sprintf("B/op per file goes from %s at %s to %s at %s (the baseline's from %s to %s): no part buffer is allocated per upload.",
			bytesPerOp(r.res.v(t+run[0], "B/op")), run[0], bytesPerOp(r.res.v(t+last, "B/op")), last,
			bytesPerOp(r.res.v(base+run[0], "B/op")), bytesPerOp(r.res.v(base+last, "B/op")))
	}
	r.shows(fmt.Sprintf("The landing reaches %s of the plain multipart upload's throughput.", span(2, lo, hi)), download,
		r.flat(t, "export", "export memory flat", run, false),
		fmt.Sprintf("The live heap peaked at %.1f MiB and the heap in use at %.1f MiB, %s part size × concurrency + 32 MiB = %.0f MiB%s.", live, heap, where, bound, same),
		bop)
	r.end()
}

// throughput draws throughput against size for imports and exports,
// beside their baselines.
func (r *report) throughputCharts() {
	var sizes []string
	for _, s := range r.sizes {
		if r.res.has("BenchmarkImportStreaming/"+s) || r.res.has("BenchmarkExportLanding/"+s) {
			sizes = append(sizes, s)
		}
	}
	if len(sizes) < 2 {
		return
	}
	r.p("## Charts: throughput and memory against size\n\n")
	ticks := sizeTicks(sizes)
	if r.res.has("BenchmarkImportStreaming/" + sizes[0]) {
		r.figure(chart{file: "throughput-import.svg", title: "Import: S3 → F&O", xLabel: "file size", yLabel: "MB/s (median)",
			logX: true, legendBottom: true, headroom: 1.1, xTicks: ticks, lines: []series{
				{name: "import (enqueue handler)", xy: r.bySize("BenchmarkImportStreaming/", "MB/s", sizes), marks: true},
				{name: "baseline: plain GET → POST", xy: r.bySize("BenchmarkImportBaseline/", "MB/s", sizes), marks: true, dashed: true},
				{name: "import, fake without checksums", xy: r.bySize("BenchmarkImportStreamingNoCRC/", "MB/s", sizes), marks: true, dashed: true},
			}}, "import throughput against file size, beside its baseline")
	}
	if r.res.has("BenchmarkExportLanding/" + sizes[0]) {
		r.figure(chart{file: "throughput-export.svg", title: "Export: F&O → S3", xLabel: "export size", yLabel: "MB/s (median)",
			logX: true, headroom: 1.5, xTicks: ticks, lines: []series{
				{name: "landing (dequeue handler)", xy: r.bySize("BenchmarkExportLanding/", "MB/s", sizes), marks: true},
				{name: "baseline: plain SDK multipart upload", xy: r.bySize("BenchmarkExportBaseline/", "MB/s", sizes), marks: true, dashed: true},
				{name: "download only (io.Discard)", xy: r.bySize("BenchmarkExportDownload/", "MB/s", sizes), marks: true, dashed: true},
			}}, "export throughput against export size, beside its baselines")
	}
}

// memory draws peak heap and peak RSS against size, with the export's
// heap bound.
func (r *report) memory() {
	r.throughputCharts()
	var sizes []string
	for _, s := range r.sizes {
		if r.res.has("BenchmarkImportStreaming/"+s) || r.res.has("BenchmarkExportLanding/"+s) {
			sizes = append(sizes, s)
		}
	}
	if len(sizes) < 2 {
		return
	}
	lines := []series{
		{name: "import peak RSS", xy: r.bySize("BenchmarkImportStreaming/", "peak-RSS-MiB", sizes), marks: true, color: palette[0]},
		{name: "import peak heap", xy: r.bySize("BenchmarkImportStreaming/", "peak-heap-MiB", sizes), marks: true, dashed: true, color: palette[0]},
		{name: "export peak RSS", xy: r.bySize("BenchmarkExportLanding/", "peak-RSS-MiB", sizes), marks: true, color: palette[1]},
		{name: "export peak heap", xy: r.bySize("BenchmarkExportLanding/", "peak-heap-MiB", sizes), marks: true, dashed: true, color: palette[1]},
	}
	if t := "BenchmarkExportLanding/" + sizes[0]; r.res.has(t) {
		bound := r.res.v(t, "part-MiB")*r.res.v(t, "concurrency") + 32
		x0, x1 := sizeBytes(sizes[0])/(1<<20), sizeBytes(sizes[len(sizes)-1])/(1<<20)
		lines = append(lines, series{name: fmt.Sprintf("export heap bound (%.0f MiB)", bound), xy: constant(x0, x1, bound), dashed: true, color: palette[3]})
	}
	r.figure(chart{file: "memory.svg", title: "Memory against size (each size in its own process)", xLabel: "file or export size",
		yLabel: "MiB", logX: true, xTicks: sizeTicks(sizes), lines: lines, headroom: 1.6}, "peak RSS and peak heap against size, import and export")
}

// lifeStage says what each stage of BenchmarkImportRequests is.
var lifeStage = map[string]string{
	"route":   "router: the S3 notification → a release request for the route",
	"release": "release pass (enqueue function): the file → the FIFO queue",
	"enqueue": "enqueue function: the file → F&O",
	"check-1": "poller run: F&O still has it queued",
	"check-2": "poller run: still queued",
	"finish":  "poller run: processed → finalized and filed in processed/",
}

// requests reports BenchmarkImportRequests: every request one imported
// file's life costs, by stage.
func (r *report) requests() {
	const name = "BenchmarkImportRequests"
	if !r.res.has(name) {
		return
	}
	m := r.res[name][len(r.res[name])-1]
	stages := []string{"route", "release", "enqueue", "check-1", "check-2", "finish"}
	type cell struct {
		n   float64
		ops []string
	}
	get := func(stage, class string) cell {
		var c cell
		var keys []string
		for k := range m {
			if strings.HasPrefix(k, stage+":"+class+":") {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		for _, k := range keys {
			c.n += m[k]
			c.ops = append(c.ops, fmt.Sprintf("%s %.0f", strings.TrimPrefix(k, stage+":"+class+":"), m[k]))
		}
		return c
	}
	r.section("Requests over an imported file's life (`BenchmarkImportRequests`)",
		"One file followed from its S3 notification to `processed/` through the real router, enqueue function (release pass,",
		"then the send) and poller, with the real SDK and d365 clients: S3 is the fake's server face, SQS an in-process sender",
		"whose messages are handed to the next stage, F&O the emulator. F&O takes the file on the third poller run. Every request",
		"is counted at the client, by operation. The file's own are those whose key names the file or its identity (the file, its",
		"markers, ledger record and result document) and the SQS messages that carry it; what a release pass or a poller run does",
		"for every file at once (listings, the poller's lease, the sweep's state, status documents) is counted apart. The F&O",
		"token (one per execution environment and hour) is fetched before counting. The same life on moto (real S3",
		"notifications, FIFO queue) is `TestRequestsOverAFilesLife` in test/e2e, which holds every one of these requests to a",
		"table of what it is for and fails on any other.")
	var aws, fno, run float64
	r.tableLeft([]string{"stage", "what", "S3 and SQS requests for the file", "F&O requests", "the pass's or run's own S3 requests (shared)"}, 5,
		rows(stages, func(st string) []string {
			a, f, ru := get(st, "aws"), get(st, "fno"), get(st, "run")
			aws, fno, run = aws+a.n, fno+f.n, run+ru.n
			show := func(c cell) string {
				if c.n == 0 {
					return "–"
				}
				return fmt.Sprintf("**%.0f**: %s", c.n, strings.Join(c.ops, ", "))
			}
			return []string{st, lifeStage[st], show(a), show(f), show(ru)}
		}))
	checks := get("check-1", "aws").n
	r.shows(fmt.Sprintf("The file cost %.0f S3 and SQS requests and %.0f F&O requests of its own over its life; the release pass and the "+
		"three poller runs that handled it made %.0f S3 requests of their own besides, shared with whatever else was waiting or in flight.", aws, fno, run),
		fmt.Sprintf("Each check that finds the file still in F&O's queue costs it %.0f F&O request and %.0f S3 requests (%s).",
			get("check-1", "fno").n, checks, strings.Join(get("check-1", "aws").ops, ", ")))
	r.end()
}

// busiest is the median and highest CPU use by other work at the starts of
// the run's processes.
func (r *report) busiest() (med, hi float64) {
	if len(r.busy.pct) == 0 {
		return 0, 0
	}
	for _, v := range r.busy.pct {
		hi = max(hi, v)
	}
	return median(append([]float64(nil), r.busy.pct...)), hi
}

func (r *report) routing() {
	const pre = "BenchmarkRouting/"
	modes := r.res.ran(pre, "fake-sqs", "moto-sqs")
	if len(modes) == 0 {
		return
	}
	r.section("Routing: S3 notifications → router → FIFO (`BenchmarkRouting`)",
		"SQS batches of 10 ObjectCreated notifications of one route (one record each, size known) through the real router handler,",
		"which sends one release request for the route (the files go out in the release pass, below).",
		"`fake-sqs` answers SendMessageBatch in-process (a counting fake of the router's Sender interface); `moto-sqs` sends",
		"the batches over the wire to moto (through a counting wrapper), one fresh FIFO queue per batch because moto's",
		"SendMessageBatch slows down as a FIFO queue fills. Per-record figures include the in-process S3 server's side.")
	r.table([]string{"SQS", "µs/record", "allocs/record", "B/record", "SendMessageBatch per batch", "PutObject per record"}, rows(modes, func(m string) []string {
		n := pre + m
		return []string{m, num(0, r.res.v(n, "ns/record")/1000), num(0, r.res.v(n, "allocs/record")), bytesPerOp(r.res.v(n, "B/record")),
			num(2, r.res.v(n, "SendMessageBatch/batch")), num(2, r.res.v(n, "PutObject/record"))}
	}))
	clo, chi := minMax(modes, func(m string) float64 { return r.res.v(pre+m, "SendMessageBatch/batch") })
	plo, phi := minMax(modes, func(m string) float64 { return r.res.v(pre+m, "PutObject/record") })
	wire := ""
	if len(modes) == 2 {
		wire = fmt.Sprintf("Sending the batches to moto over the wire instead of to the in-process sender takes a record from %.0f to %.0f µs.",
			r.res.v(pre+"fake-sqs", "ns/record")/1000, r.res.v(pre+"moto-sqs", "ns/record")/1000)
	}
	r.shows(fmt.Sprintf("A batch of 10 notifications cost %s SendMessageBatch, counted at the sender, and a record %s PutObject.",
		span(2, clo, chi), span(2, plo, phi)), wire)
	r.goal(clo == 1 && chi == 1, "one SendMessageBatch per batch of 10 records")
	r.end()
}

func (r *report) release() {
	const pre = "BenchmarkRelease/"
	ns := r.res.ran(pre, "1", "100", "5000")
	if len(ns) == 0 {
		return
	}
	r.section("Drop order: a release pass over a route (`BenchmarkRelease`)",
		"One pass of the real release code over a route with 1, 100 and 5,000 files waiting: it lists the route's folder (every",
		"version) and its released markers through the real SDK client against the S3 fake's server face, then sends the files",
		"in the route's order to a counting in-process FIFO sender, each in a request of its own (SQS may refuse one entry of a",
		"batch and take a later one, which in a FIFO group would put the later file ahead for good), and writes a released",
		"marker each. Every file has settled.")
	r.table([]string{"files waiting", "requests per file", "listings per file", "PutObject per file", "SendMessageBatch per file", "ms per pass", "µs per file"},
		rows(ns, func(n string) []string {
			k := pre + n
			return []string{n, num(3, r.res.v(k, "requests/file")), num(4, r.res.v(k, "lists/file")), num(2, r.res.v(k, "PutObject/file")),
				num(2, r.res.v(k, "SendMessageBatch/file")), num(0, r.res.v(k, "ms/pass")), num(0, r.res.v(k, "ns/file")/1000)}
		}))
	first, last := pre+ns[0], pre+ns[len(ns)-1]
	r.shows(fmt.Sprintf("With %s file(s) waiting a file cost %.2f requests; with %s, %.2f: the listings are shared by every file a pass releases.",
		ns[0], r.res.v(first, "requests/file"), ns[len(ns)-1], r.res.v(last, "requests/file")),
		fmt.Sprintf("The pass spent %.0f µs a file with %s waiting and %.0f µs with %s, on top of the route's settle window.",
			r.res.v(first, "ns/file")/1000, ns[0], r.res.v(last, "ns/file")/1000, ns[len(ns)-1]))
	r.goal(len(ns) > 1 && r.res.v(last, "requests/file") <= r.res.v(first, "requests/file"),
		"requests per released file do not grow with the files waiting in the route")
	r.end()
}

// finalizeCalls is the F&O requests a finished import's finalization makes
// after the GetMessageStatus that saw it finish.
const finalizeCalls = 3

func (r *report) poller() {
	const pre = "BenchmarkPollerAtScale/"
	modes := r.res.ran(pre, "one-minute", "lambda-120s")
	if len(modes) == 0 {
		return
	}
	n0 := pre + modes[0]
	budget := r.res.v(n0, "budget/min")
	what := map[string]string{
		"one-minute": "`one-minute` has no deadline, so the run takes on one minute's budget.",
		"lambda-120s": fmt.Sprintf("`lambda-120s` has a %.0f s timeout and takes on what the limiter allows in the %.0f s before its margin "+
			"(`poller.RunQuota`), stopping when the next request could not go out before the deadline.",
			r.res.v(pre+"lambda-120s", "timeout-s"), r.res.v(pre+"lambda-120s", "deadline-s")),
	}
	setup := []string{
		fmt.Sprintf("One invocation of the real poller (fresh execution environment, budget of %s F&O requests in any 60 seconds, concurrency %.0f)",
			thou(budget), r.res.v(n0, "concurrency")),
		fmt.Sprintf("over %s ledger records, all due, most of them still Enqueued in the emulator and the rest finished (finalized:", thou(r.res.v(n0, "in-flight"))),
		fmt.Sprintf("%d more OData requests each, a copy, a result document, deletes). The ledger, markers and source files live in the S3", finalizeCalls),
		"fake's server face (ListObjectsV2 with prefix, start-after, max-keys and continuation). F&O requests are counted at the emulator",
		"and time-stamped at the client. The limiter (`poller.BudgetRate`) lets one request go at once and then budget − 1 a minute, evenly paced.",
	}
	for _, m := range modes {
		setup = append(setup, what[m])
	}
	r.section("Poller at scale: imports in flight (`BenchmarkPollerAtScale`)", setup...)
	r.table([]string{"run", "records taken", "checked", "finalized", "left for a later run", "F&O requests", "GetMessageStatus", "S3 requests",
		"run s", "ms/record", "most F&O requests in 60 s", "over the limiter's allowance"}, rows(modes, func(m string) []string {
		n := pre + m
		return []string{m, num(0, r.res.v(n, "records")), num(0, r.res.v(n, "checked")), num(0, r.res.v(n, "finalized")), num(0, r.res.v(n, "deferred")),
			num(0, r.res.v(n, "fno-requests")), num(0, r.res.v(n, "GetMessageStatus")), num(0, r.res.v(n, "s3-requests")), num(1, r.res.v(n, "run-s")),
			num(1, r.res.v(n, "ms/record")), num(0, r.res.v(n, "max-fno-per-60s")), num(0, r.res.v(n, "over-budget"))}
	}))
	held, exact := true, true
	extra, most, msRecord := 0.0, 0.0, 0.0
	for _, m := range modes {
		n := pre + m
		checked, reqs := r.res.v(n, "checked"), r.res.v(n, "fno-requests")
		held = held && r.res.v(n, "over-budget") == 0
		// A finalization the deadline cut short made its GetMessageStatus
		// and up to finalizeCalls − 1 further requests (one record per
		// worker); it is repeated next run.
		e := reqs - checked - finalizeCalls*r.res.v(n, "finalized")
		exact = exact && e >= 0 && e <= (finalizeCalls-1)*r.res.v(n, "concurrency") && r.res.v(n, "GetMessageStatus") == checked
		extra, most, msRecord = max(extra, e), max(most, r.res.v(n, "max-fno-per-60s")), max(msRecord, r.res.v(n, "ms/record"))
	}
	slo, shi := minMax(modes, func(m string) float64 { return r.res.v(pre+m, "s3-requests") / max(r.res.v(pre+m, "checked"), 1) })
	cost := fmt.Sprintf("The F&O requests do not add up to one GetMessageStatus per record checked plus %d per finalized one.", finalizeCalls)
	if exact {
		cost = fmt.Sprintf("Each run made one GetMessageStatus per record checked plus %d F&O requests per finalized one", finalizeCalls)
		if extra > 0 {
			cost += fmt.Sprintf(", and %.0f more for finalizations the deadline cut short, which the next run makes again", extra)
		}
		cost += "."
	}
	limiter := "The F&O requests never ran ahead of the limiter"
	if !held {
		limiter = "The F&O requests ran ahead of the limiter"
	}
	spacing := 60000 / max(budget-1, 1)
	pace := fmt.Sprintf("A record took at most %.0f ms of a run, against the limiter's %.0f ms between requests (60 s ÷ (budget − 1))", msRecord, spacing)
	if msRecord <= spacing*1.1 {
		pace += ": the limiter, not the work, sets how long a run lasts"
	}
	r.shows(cost, fmt.Sprintf("The S3 fake served %s requests per record checked.", span(1, slo, shi)),
		fmt.Sprintf("%s, and no 60 seconds held more than %s of them (the budget is %s).", limiter, thou(most), thou(budget)), pace+".")
	r.goal(held, "the poller never exceeds its limiter's allowance (one request, then budget − 1 a minute)")
	r.goal(exact, fmt.Sprintf("F&O requests = checked + %d × finalized, but for at most %d a worker from finalizations the deadline cut short (one GetMessageStatus per record, no retries; extra seen: %.0f)",
		finalizeCalls, finalizeCalls-1, extra))
	r.goal(most <= budget, fmt.Sprintf("at most %s F&O requests in any 60-second window, fresh environment included (most seen: %.0f)", thou(budget), most))
	r.end()
}

func (r *report) schedule() {
	const pre = "BenchmarkPollSchedule/"
	loads := r.res.ran(pre, "steady-10k", "steady-10k-cold", "capacity-95pct", "capacity-110pct", "burst-10k", "burst-10k-cold")
	if len(loads) == 0 {
		return
	}
	a := func(unit string) float64 { return r.res.v(pre+"analysis", unit) }
	l := func(load, unit string) float64 { return r.res.v(pre+load, unit) }
	budget, odata, young, life, perRun := a("budget/min"), a("odata-limit/5min"), a("young-age-min"), a("import-life-h"), a("requests/run")
	setup, cold := r.scheduleSetup(pre, loads)
	r.section("Poll schedule: back-off against the budget and the OData limit (`TestPollSchedule`, `BenchmarkPollSchedule`)", setup...)
	lo, hi := a("calls-per-import-lo"), a("calls-per-import-hi")
	dayLo, dayHi := a("imports/day-lo"), a("imports/day-hi")
	r.p("Analysis: with the back-off, an import that lives %.0f h costs %s F&O requests (the range: a delay of whole intervals means the ", life, span(0, lo, hi))
	r.p("next run or the one after, depending on where in its run the record was checked). A run can make %s requests, so the poller ", thou(perRun))
	r.p("follows %s–%s such imports a day (%s–%s in flight).\n\n", thou(dayLo), thou(dayHi), thou(dayLo*life/24), thou(dayHi*life/24))
	columns := []string{"in-flight", "req/min", "max-req/1min", "max-req/5min", "young-gap-runs", "young-gap-min", "young-misses",
		"first-check-min", "max-run-records", "max-run-s", "deferred"}
	prec := map[string]int{"young-gap-min": 1, "first-check-min": 1}
	r.table([]string{"load", "in flight", "F&O req/min (avg)", "most in 60 s", "most in 5 min", "young: most runs between checks",
		"young: longest gap (min)", "young: late checks", "longest enqueue → first check (min)", "most records in a run", "longest run (s)",
		"left for a later run"}, rows(loads, func(n string) []string {
		row := []string{n}
		for _, c := range columns {
			row = append(row, num(prec[c], l(n, c)))
		}
		return row
	}))
	var clear, behind, differ []string
	clearGap, behindGap := 0.0, 0.0
	for _, n := range loads {
		if l(n, "deferred") == 0 {
			clear, clearGap = append(clear, n), max(clearGap, l(n, "young-gap-runs"))
		} else {
			behind, behindGap = append(behind, n), max(behindGap, l(n, "young-gap-runs"))
		}
		if warm, isCold := strings.CutSuffix(n, "-cold"); isCold && r.res.has(pre+warm) {
			for _, c := range columns {
				if l(n, c) != l(warm, c) && !contains(differ, c) {
					differ = append(differ, c)
				}
			}
		}
	}
	_, worst1 := minMax(loads, func(n string) float64 { return l(n, "max-req/1min") })
	_, worst5 := minMax(loads, func(n string) float64 { return l(n, "max-req/5min") })
	steady := ""
	if r.res.has(pre + "steady-10k") {
		s := func(unit string) float64 { return l("steady-10k", unit) }
		steady = fmt.Sprintf("With %s imports in flight in a steady state the poller makes %.0f requests a minute on average; an import younger "+
			"than %.0f minutes waits at most %.0f runs (%.1f minutes) between checks, and its first check comes at most %.1f minutes after enqueue.",
			thou(s("in-flight")), s("req/min"), young, s("young-gap-runs"), s("young-gap-min"), s("first-check-min"))
	}
	gaps := ""
	if len(clear) > 0 {
		gaps = fmt.Sprintf("Where no run left due records behind (%s), an import younger than %.0f minutes waited at most %.0f runs between checks",
			strings.Join(clear, ", "), young, clearGap)
	}
	if len(behind) > 0 {
		if gaps == "" {
			gaps = "Where runs left due records behind"
		} else {
			gaps += "; where runs left due records behind"
		}
		gaps += fmt.Sprintf(" (%s), up to %.0f", strings.Join(behind, ", "), behindGap)
	}
	if gaps != "" {
		gaps += "."
	}
	limits := fmt.Sprintf("On every load no 60 seconds hold more than %.0f F&O requests (the budget is %s) and no 5 minutes more than %.0f (OData allows %s)",
		worst1, thou(budget), worst5, thou(odata))
	if worst5 < odata {
		limits += fmt.Sprintf(", which leaves at least %s of those 5 minutes' allowance to the other functions on the same app registration", thou(odata-worst5))
	}
	twins := ""
	if cold {
		twins = "Every *-cold* load matches its warm twin in every column."
		if len(differ) > 0 {
			twins = "The *-cold* loads differ from their warm twins in: " + strings.Join(differ, ", ") + "."
		}
	}
	r.shows(steady, gaps, limits+".", twins)
	if r.res.has(pre + "steady-10k") {
		r.goal(l("steady-10k", "young-misses") == 0 && l("steady-10k", "young-gap-runs") <= 2,
			fmt.Sprintf("steady %s in flight: every import younger than %.0f minutes checked at least once every 2 poll intervals", thou(l("steady-10k", "in-flight")), young))
	}
	coldNote := ""
	if cold {
		coldNote = ", every run a cold start included"
	}
	r.goal(worst1 <= budget, fmt.Sprintf("≤ %s F&O requests in any 60 seconds (the budget), every load%s (most %.0f)", thou(budget), coldNote, worst1))
	r.goal(worst5 <= odata, fmt.Sprintf("≤ %s F&O requests in any 5 minutes (OData limit), every load%s (most %.0f)", thou(odata), coldNote, worst5))
	r.scheduleCharts(budget, odata)
	r.end()
}

// scheduleSetup is the schedule section's description of the simulation
// and its loads, and whether a cold load ran.
func (r *report) scheduleSetup(pre string, loads []string) (setup []string, cold bool) {
	a := func(unit string) float64 { return r.res.v(pre+"analysis", unit) }
	life, budget, perRun := a("import-life-h"), a("budget/min"), a("requests/run")
	l := func(load, unit string) float64 { return r.res.v(pre+load, unit) }
	what := map[string]string{
		"steady-10k":      fmt.Sprintf("*steady-10k* has imports arriving evenly, each taking %.0f h in F&O.", life),
		"capacity-95pct":  "*capacity-95pct* arrives at 95% of the lower analytic capacity (below).",
		"capacity-110pct": "*capacity-110pct* arrives at 110% of the higher one.",
		"burst-10k":       fmt.Sprintf("*burst-10k* is %s imports arriving within a minute.", thou(l("burst-10k", "in-flight"))),
	}
	setup = []string{
		fmt.Sprintf("A deterministic simulation (bench/schedule_test.go; simulated time, no wall clock): EventBridge runs the poller every %.0f minutes", a("interval-min")),
		fmt.Sprintf("(%.0f s timeout, %.0f s margin); each run takes the due records oldest first, up to the poller's per-run quota", a("timeout-s"), a("margin-s")),
		fmt.Sprintf("(`poller.RunQuota`: %s, what the limiter lets through in %.0f s), and checks them under the poller's own limiter", thou(perRun), a("timeout-s")-a("margin-s")),
		fmt.Sprintf("(x/time/rate with `poller.BudgetRate`'s parameters, imported, not copied; budget %s a minute), %.0f ms per record and worker", thou(budget), a("per-record-ms")),
		fmt.Sprintf("besides F&O waits; unfinished records are rescheduled with the real `poller.NextDelay` (%.0f min unit), finished ones", a("unit-min")),
		fmt.Sprintf("cost %.0f more requests. Loads:", a("finalize-calls")),
	}
	for _, n := range loads {
		if w := what[n]; w != "" {
			setup = append(setup, w)
		}
		cold = cold || strings.HasSuffix(n, "-cold")
	}
	if cold {
		setup = append(setup, "A *-cold* load gives every run a fresh execution environment (a fresh limiter).")
	}
	return setup, cold
}

// chartMinutes is how much of a simulation the schedule charts show.
const chartMinutes = 90

// scheduleCharts draws, for each load whose series the simulation wrote,
// the F&O requests a minute over time against the budget and the OData
// limit.
func (r *report) scheduleCharts(budget, odata float64) {
	if r.series == "" {
		return
	}
	for _, load := range []string{"steady-10k", "burst-10k"} {
		t, last60, last5, err := readSeries(filepath.Join(r.series, "schedule-"+load+".csv"))
		if err != nil {
			continue
		}
		// The first 90 minutes: the back-off's pattern repeats after that.
		var per1, per5 plotter.XYs
		for i := range t {
			if t[i] > chartMinutes*60 {
				break
			}
			per1 = append(per1, plotter.XY{X: t[i] / 60, Y: last60[i]})
			per5 = append(per5, plotter.XY{X: t[i] / 60, Y: last5[i] / 5})
		}
		x1 := per1[len(per1)-1].X
		r.figure(chart{file: "schedule-" + load + ".svg", title: "Poll schedule, " + load + ": F&O requests a minute (simulated)",
			xLabel: "minutes since the start", yLabel: "F&O requests a minute", headroom: 1.55, lines: []series{
				{name: "requests in the last 60 s", xy: per1, color: palette[0]},
				{name: "requests in the last 5 min ÷ 5", xy: per5, color: palette[2]},
				{name: fmt.Sprintf("budget (%s in any 60 s)", thou(budget)), xy: constant(0, x1, budget), dashed: true, color: palette[1]},
				{name: fmt.Sprintf("OData limit (%s in any 5 min) ÷ 5", thou(odata)), xy: constant(0, x1, odata/5), dashed: true, color: palette[3]},
			}}, "the poll schedule's F&O requests a minute over time, "+load+", against the budget and the OData limit")
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func (r *report) coldStart() {
	const pre = "BenchmarkColdStart/"
	fns := r.res.ran(pre, "router", "enqueue", "poller", "dequeue")
	if len(fns) == 0 {
		return
	}
	nlo, nhi := minMax(fns, func(f string) float64 { return r.res.v(pre+f, "N") })
	r.section("Cold start and binary size (`BenchmarkColdStart`)",
		"Each function built like the Makefile's `build-<Id>` targets (linux, CGO off, `-tags lambda.norpc -trimpath -ldflags \"-s -w\"`)",
		fmt.Sprintf("for amd64 (the build started here) and arm64 (the template's default), then started %s times behind the project's", span(0, nlo, nhi)),
		"Runtime API host (`lambdahost.Start`) with a valid environment (moto, the emulator); cold start is",
		"`Host.ColdStart()`, process start to the first GET /runtime/invocation/next, each start followed by one harmless invocation.",
		"The emulator's CA is given as the system roots (`SSL_CERT_FILE`), not as `FNO_CA_BUNDLE`: on AWS no bundle is set and the",
		"roots are read at the first TLS handshake, whereas a bundle makes init parse the system roots as well (about 40 ms here).")
	r.table([]string{"function", "size MiB (amd64)", "size MiB (arm64)", "cold start ms (median)", "cold start ms (max)"}, rows(fns, func(f string) []string {
		n := pre + f
		return []string{f, num(2, r.res.v(n, "size-MiB")), num(2, r.res.v(n, "arm64-size-MiB")), num(1, r.res.v(n, "cold-start-ms")),
			num(1, r.res.v(n, "max-cold-start-ms"))}
	}))
	_, size := minMax(fns, func(f string) float64 { return max(r.res.v(pre+f, "size-MiB"), r.res.v(pre+f, "arm64-size-MiB")) })
	start := func(f string) float64 { return r.res.v(pre+f, "cold-start-ms") }
	fast, slow := fns[0], fns[0]
	for _, f := range fns {
		if start(f) < start(fast) {
			fast = f
		}
		if start(f) > start(slow) {
			slow = f
		}
	}
	starts := fmt.Sprintf("The median cold start of %s is %.1f ms.", fast, start(fast))
	if fast != slow {
		starts = fmt.Sprintf("The median cold start is %.1f ms for %s, the fastest, and %.1f ms for %s, the slowest.", start(fast), fast, start(slow), slow)
	}
	r.shows(fmt.Sprintf("Every bootstrap is %.2f MiB or less stripped.", size), starts)
	r.goal(size < 15, fmt.Sprintf("bootstrap under 15 MiB stripped (largest %.2f MiB)", size))
	r.goal(start(slow) < 50, fmt.Sprintf("cold start under 50 ms, median per function (slowest %.1f ms)", start(slow)))
	r.end()
}

// configScale reports the configuration document's benchmarks
// (internal/shared/config) and the status view's (internal/ops/status).
func (r *report) configScale() {
	docs := r.res.ran("BenchmarkParse/", "routes=10/jobs=2", "routes=100/jobs=20", "routes=1000/jobs=200")
	lookups := r.res.ran("BenchmarkLookup/", "routes=10", "routes=100", "routes=1000")
	views := r.res.ran("BenchmarkStatus/", "100", "1000", "10000")
	if len(docs)+len(lookups)+len(views) == 0 {
		return
	}
	r.section("Configuration and status at scale (`BenchmarkParse`, `BenchmarkLookup`, `BenchmarkStatus`)",
		"internal/shared/config: what a cold start pays to read and validate the configuration document (`config.Sample`: N routes,",
		"N/5 export jobs), and a route's lookup by folder, which every notification and release pass makes. internal/ops/status:",
		"one `s3fno status` view over the S3 fake with N imports in flight over 50 routes and 200 jobs, requests counted at the client.")
	if len(docs) > 0 {
		r.table([]string{"document", "ms to load", "MB/s", "B/op", "allocs/op"}, rows(docs, func(d string) []string {
			n := "BenchmarkParse/" + d
			return []string{d, num(2, r.res.v(n, "ns/op")/1e6), num(0, r.res.v(n, "MB/s")), bytesPerOp(r.res.v(n, "B/op")), num(0, r.res.v(n, "allocs/op"))}
		}))
	}
	if len(lookups) > 0 {
		r.table([]string{"routes", "ns per lookup", "allocs/op"}, rows(lookups, func(l string) []string {
			n := "BenchmarkLookup/" + l
			return []string{strings.TrimPrefix(l, "routes="), num(1, r.res.v(n, "ns/op")), num(0, r.res.v(n, "allocs/op"))}
		}))
	}
	if len(views) > 0 {
		r.table([]string{"imports in flight", "requests per view", "ms per view", "B/op"}, rows(views, func(v string) []string {
			n := "BenchmarkStatus/" + v
			return []string{v, num(0, r.res.v(n, "requests/op")), num(1, r.res.v(n, "ns/op")/1e6), bytesPerOp(r.res.v(n, "B/op"))}
		}))
	}
	if big := "BenchmarkParse/routes=1000/jobs=200"; r.res.has(big) {
		r.shows(fmt.Sprintf("Loading a 1,000-route, 200-job document takes %.1f ms and allocates %s.", r.res.v(big, "ns/op")/1e6, bytesPerOp(r.res.v(big, "B/op"))))
	}
	if lo, hi := "BenchmarkLookup/routes=10", "BenchmarkLookup/routes=1000"; r.res.has(lo) && r.res.has(hi) && r.res.v(lo, "ns/op") > 0 {
		ratio := r.res.v(hi, "ns/op") / r.res.v(lo, "ns/op")
		r.goal(ratio <= 2, fmt.Sprintf("route lookup flat in the number of routes (1,000 routes ÷ 10 routes: %.2f)", ratio))
	}
	if v := "BenchmarkStatus/10000"; r.res.has(v) {
		n := r.res.v(v, "requests/op")
		r.goal(n <= 200, fmt.Sprintf("status with 10,000 imports in flight from at most 200 AWS requests (%.0f)", n))
	}
	r.end()
}

// pairRuns says how many times each throughput pair ran at its smallest
// size, and how many files each process moved, from the results themselves
// ("" when none ran): a merged report may hold parts run with different
// BENCH_REPEAT or iterations.
func (r *report) pairRuns() string {
	var parts []string
	for _, p := range []struct{ what, baseline string }{
		{"import", "BenchmarkImportBaseline/"}, {"package", "BenchmarkPackageBaseline/"}, {"export", "BenchmarkExportBaseline/"},
	} {
		times, files := 0, []string{}
		for _, size := range r.sizes {
			runs := r.res[p.baseline+size]
			if len(runs) == 0 {
				continue
			}
			if times == 0 {
				times = len(runs)
			}
			files = append(files, fmt.Sprintf("%.0f of %s", runs[0]["N"], size))
		}
		if times > 0 {
			parts = append(parts, fmt.Sprintf("%s %d times, a process moving %s", p.what, times, joinAnd(files)))
		}
	}
	return strings.Join(parts, "; ")
}

// joinAnd joins items as prose: "a", "a and b", "a, b and c".
func joinAnd(items []string) string {
	if len(items) < 2 {
		return strings.Join(items, "")
	}
	return strings.Join(items[:len(items)-1], ", ") + " and " + items[len(items)-1]
}
