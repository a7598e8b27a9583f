package bench_test

// A deterministic simulation of the poller's schedule: EventBridge runs the
// poller every Interval (rate(2 minutes)); each run lists the due ledger
// records oldest first (by next-check second, then identity), takes at most
// poller.RunQuota records (what the limiter lets through before the
// deadline), and checks them in that order under the limiter of
// poller.NewBudget (golang.org/x/time/rate with poller.BudgetRate's
// parameters, imported so the two cannot drift: burst 1, budget − 1 a
// minute), waiting for tokens as the client does and stopping when a wait
// would pass the deadline. A record still running in F&O is
// rescheduled with the real poller.NextDelay; a finished one costs the
// finalization requests and leaves the ledger. Time is simulated: no
// wall clock, no sleeping.

import (
	"container/heap"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/fno-bridge/s3-fno/internal/imports/poller"
)

// schedule is the deployed configuration the simulation runs.
type schedule struct {
	Interval      time.Duration // PollSchedule: rate(2 minutes)
	Unit          time.Duration // POLL_INTERVAL: the back-off unit and the first check after enqueue (1m)
	Timeout       time.Duration // the poller's Lambda timeout (template: 120 s)
	Margin        time.Duration // poller.Config.Margin default (10 s)
	Budget        int           // POLL_BUDGET_PER_MINUTE (1000)
	StuckAfter    time.Duration // STUCK_AFTER (24h)
	PerRecord     time.Duration // time a record takes besides F&O waits, per worker (S3 reads and writes, F&O latency)
	Concurrency   int           // poller.Config.Concurrency default (4)
	FinalizeCalls int           // F&O requests after the GetMessageStatus that sees a final status (processed: 3)
}

var deployed = schedule{
	Interval: 2 * time.Minute, Unit: time.Minute, Timeout: 120 * time.Second, Margin: 10 * time.Second,
	Budget: 1000, StuckAfter: 24 * time.Hour, PerRecord: 40 * time.Millisecond, Concurrency: 4, FinalizeCalls: 3,
}

// odataLimit is F&O's service protection limit: 6,000 requests per 5
// minutes per user.
const (
	odataLimit  = 6000
	odataWindow = 5 * time.Minute
	youngAge    = time.Hour
	importLife  = 23 * time.Hour // how long an import of the steady loads takes in F&O
)

// load is the imports to follow: arrivals and when F&O finishes each.
type load struct {
	Name string
	// Arrivals returns the enqueue times, ascending, and each one's
	// processing time in F&O.
	Arrivals func() (enq []time.Duration, took []time.Duration)
	// For is how long to simulate.
	For time.Duration
	// Cold gives every run a fresh execution environment (a fresh
	// limiter).
	Cold bool
}

// steady is perDay imports a day arriving evenly, each taking took in
// F&O: perDay·took/24h in flight. The imports of the took before the
// simulation starts are there already (enqueue times below zero), in the
// middle of their back-off, so the load is steady from the first run.
func steady(perDay float64, took, span time.Duration) func() ([]time.Duration, []time.Duration) {
	return func() ([]time.Duration, []time.Duration) {
		gap := time.Duration(float64(24*time.Hour) / perDay)
		var enq, dur []time.Duration
		for t := -took + gap; t < span; t += gap {
			enq = append(enq, t)
			dur = append(dur, took)
		}
		return enq, dur
	}
}

// burst is n imports arriving within a minute, all finishing after took.
func burst(n int, took time.Duration) func() ([]time.Duration, []time.Duration) {
	return func() ([]time.Duration, []time.Duration) {
		enq, dur := make([]time.Duration, n), make([]time.Duration, n)
		for i := range n {
			enq[i] = time.Duration(i) * time.Minute / time.Duration(n)
			dur[i] = took
		}
		return enq, dur
	}
}

type simResult struct {
	Imports        int
	MaxInFlight    int
	Calls          int
	Runs           int
	AvgPerMinute   float64 // F&O requests per minute over the simulation
	Max5Min        int     // most F&O requests in any 5-minute window
	Max1Min        int
	MaxRunRecords  int           // most records one run took on
	Deferred       int           // due records a run listed but left (deadline or budget)
	YoungGapRuns   int           // most runs between two checks of a record younger than an hour (the enqueue counts as a check in the run before it)
	YoungGapWall   time.Duration // the same gap in time
	YoungMisses    int           // checks of records younger than an hour that came more than 2 runs after the previous one
	FirstCheck     time.Duration // longest enqueue → first check
	MaxRunDuration time.Duration // longest run (first to last request)
	Finalized      int
	Times          []time.Duration // when each F&O request went out, ascending
}

// ledger entry order: next-check second, then identity (a hash in the
// real ledger; a scrambled index here).
type simEntry struct {
	sec int64
	tie uint32
	i   int
}

type simHeap []simEntry

func (h simHeap) Len() int { return len(h) }
func (h simHeap) Less(a, b int) bool {
	return h[a].sec < h[b].sec || h[a].sec == h[b].sec && h[a].tie < h[b].tie
}
func (h simHeap) Swap(a, b int)  { h[a], h[b] = h[b], h[a] }
func (h *simHeap) Push(x any)    { *h = append(*h, x.(simEntry)) }
func (h *simHeap) Pop() any      { o := *h; e := o[len(o)-1]; *h = o[:len(o)-1]; return e }
func (h simHeap) peek() simEntry { return h[0] }

func simulate(s schedule, l load) simResult {
	enq, took := l.Arrivals()
	n := len(enq)
	epoch := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return epoch.Add(d) }
	lastRun := make([]int, n) // run index of the last check (or the run before enqueue)
	lastAt := make([]time.Duration, n)
	checked := make([]bool, n)
	synthetic := make([]bool, n) // the last check was made up (imports there before the start)
	var res simResult
	res.Imports = n
	var h simHeap
	next, inFlight := 0, 0
	var calls []time.Duration
	newLimiter := func() *rate.Limiter { return rate.NewLimiter(poller.BudgetRate(s.Budget)) }
	lim := newLimiter()
	perWorker := s.PerRecord / time.Duration(s.Concurrency)
	runs := int(l.For / s.Interval)
	// Imports enqueued before the start at least a unit ago are mid-way
	// through their back-off: next check at a spread phase of their
	// current delay, last check one delay before that.
	for ; next < n && enq[next] <= -s.Unit; next++ {
		age := -enq[next]
		d := poller.NextDelay(age, age >= s.StuckAfter, s.Unit)
		phase := time.Duration(float64(d) * math.Mod(float64(next)*0.6180339887, 1))
		heap.Push(&h, simEntry{sec: at(phase).Unix(), tie: uint32(next) * 2654435761, i: next})
		lastAt[next] = phase - d
		lastRun[next] = int(math.Floor(float64(lastAt[next]) / float64(s.Interval)))
		checked[next], synthetic[next] = true, true
		inFlight++
	}
	for k := 0; k < runs; k++ {
		start := time.Duration(k) * s.Interval
		// Enqueues up to the run's start: the importer wrote each record
		// due one unit after enqueue.
		for ; next < n && enq[next] <= start; next++ {
			first := at(enq[next] + s.Unit)
			heap.Push(&h, simEntry{sec: first.Unix(), tie: uint32(next) * 2654435761, i: next})
			lastRun[next] = k - 1
			lastAt[next] = enq[next]
			inFlight++
		}
		res.MaxInFlight = max(res.MaxInFlight, inFlight)
		if l.Cold {
			lim = newLimiter()
		}
		deadline := start + s.Timeout - s.Margin
		limit := poller.RunQuota(s.Budget, deadline-start) // poller.perRun
		var due []simEntry
		for len(h) > 0 && len(due) < limit && h.peek().sec <= at(start).Unix() {
			due = append(due, heap.Pop(&h).(simEntry))
		}
		res.MaxRunRecords = max(res.MaxRunRecords, len(due))
		clock := start
		// call waits for a token; false: the wait would pass the deadline.
		call := func() bool {
			r := lim.ReserveN(at(clock), 1)
			d := r.DelayFrom(at(clock))
			if !r.OK() || clock+d > deadline {
				r.CancelAt(at(clock))
				return false
			}
			clock += d
			calls = append(calls, clock)
			res.MaxRunDuration = max(res.MaxRunDuration, clock-start)
			return true
		}
		stopped := false
		for j, e := range due {
			if stopped {
				heap.Push(&h, e) // left due, at its key
				res.Deferred++
				continue
			}
			i := e.i
			clock += perWorker
			if !call() {
				stopped = true
				heap.Push(&h, e)
				res.Deferred++
				continue
			}
			now := clock
			age := now - enq[i]
			if !synthetic[i] && (age < youngAge || lastAt[i]-enq[i] < youngAge) {
				gap := k - lastRun[i]
				if !checked[i] {
					res.FirstCheck = max(res.FirstCheck, now-enq[i])
				}
				if lastAt[i]-enq[i] < youngAge {
					res.YoungGapRuns = max(res.YoungGapRuns, gap)
					res.YoungGapWall = max(res.YoungGapWall, now-lastAt[i])
					if gap > 2 {
						res.YoungMisses++
					}
				}
			}
			checked[i], synthetic[i], lastRun[i], lastAt[i] = true, false, k, now
			if now >= enq[i]+took[i] { // F&O has finished it: finalize
				ok := true
				for range s.FinalizeCalls {
					if !call() {
						ok = false
						break
					}
				}
				if !ok { // the budget ran out mid-way: the record stays due
					stopped = true
					heap.Push(&h, e)
					res.Deferred += len(due) - j
					continue
				}
				res.Finalized++
				inFlight--
				continue
			}
			d := poller.NextDelay(age, age >= s.StuckAfter, s.Unit)
			heap.Push(&h, simEntry{sec: at(now + d).Unix(), tie: e.tie, i: i})
		}
		res.Runs++
	}
	// Records still young at the end whose last check is more than two runs
	// back count as misses too.
	end := runs - 1
	for i := 0; i < next; i++ {
		if !synthetic[i] && end-lastRun[i] > 2 && lastAt[i]-enq[i] < youngAge && !(enq[i]+took[i] <= lastAt[i]) {
			res.YoungMisses++
			res.YoungGapRuns = max(res.YoungGapRuns, end-lastRun[i])
		}
	}
	res.Calls, res.Times = len(calls), calls
	res.AvgPerMinute = float64(len(calls)) / l.For.Minutes()
	res.Max5Min = maxInWindow(calls, odataWindow)
	res.Max1Min = maxInWindow(calls, time.Minute)
	return res
}

func maxInWindow(ts []time.Duration, w time.Duration) int {
	best, lo := 0, 0
	for hi := range ts {
		for ts[hi]-ts[lo] >= w {
			lo++
		}
		best = max(best, hi-lo+1)
	}
	return best
}

// lifetimeCalls is the analysis: the F&O requests one import costs over a
// life of took, stepping its age through poller.NextDelay. A check is
// followed by the next at the first run at or after next-check time: the
// gap is the delay rounded up to whole intervals (ceil), or one interval
// more when the delay is a whole number of intervals and the check
// happened after the run's start (floor+1). lo uses the longer gaps, hi
// the shorter (more calls). The first check is one unit after enqueue,
// i.e. in one of the two runs after it.
func lifetimeCalls(s schedule, took time.Duration) (lo, hi float64) {
	count := func(gap func(d time.Duration) time.Duration) float64 {
		calls := 0.0
		for age := s.Unit; ; {
			calls++
			if age >= took {
				return calls + float64(s.FinalizeCalls)
			}
			age += gap(poller.NextDelay(age, age >= s.StuckAfter, s.Unit))
		}
	}
	p := s.Interval
	hi = count(func(d time.Duration) time.Duration { return p * ((d + p - 1) / p) })
	lo = count(func(d time.Duration) time.Duration { return p * (d/p + 1) })
	return lo, hi
}

// runRequests is the most F&O requests one run can make: what the
// limiter lets through between its start and its deadline. The limiter's
// burst is 1, so the idle time between runs buys nothing: this, not
// the budget × the interval, is what the poller can spend.
func runRequests(s schedule) int { return poller.RunQuota(s.Budget, s.Timeout-s.Margin) }

// capacity is the analytic bound: the most imports per day (each taking
// took in F&O) the budget can follow, from the conservative (hi) and the
// optimistic (lo) call counts.
func capacity(s schedule, took time.Duration) (perDayLo, perDayHi float64) {
	lo, hi := lifetimeCalls(s, took)
	perDay := float64(runRequests(s)) * float64(24*time.Hour) / float64(s.Interval)
	return perDay / hi, perDay / lo
}

// loads are the scenarios: the 10,000 imports in flight of
// BenchmarkPollerAtScale as a steady state, the analytic capacity from
// both sides, and 10,000 arriving at once.
func loads() []load {
	const took = importLife
	perDay := 10000 * 24 / took.Hours() // 10,000 in flight
	lo, hi := capacity(deployed, took)
	return []load{
		{Name: "steady-10k", Arrivals: steady(perDay, took, 4*time.Hour), For: 4 * time.Hour},
		{Name: "steady-10k-cold", Arrivals: steady(perDay, took, 4*time.Hour), For: 4 * time.Hour, Cold: true},
		{Name: "capacity-95pct", Arrivals: steady(0.95*lo, took, 4*time.Hour), For: 4 * time.Hour},
		{Name: "capacity-110pct", Arrivals: steady(1.10*hi, took, 4*time.Hour), For: 4 * time.Hour},
		{Name: "burst-10k", Arrivals: burst(10000, 2*time.Hour), For: 3 * time.Hour},
		{Name: "burst-10k-cold", Arrivals: burst(10000, 2*time.Hour), For: 3 * time.Hour, Cold: true},
	}
}

// TestPollSchedule checks the back-off against the budget: with 10,000
// imports in flight in a steady state (10,435 a day, each 23 hours in F&O,
// most of them therefore not finished), every import younger than an hour
// is checked in at least one of every two runs (2 poll intervals); and on
// every load, warm or with every run a cold start, no 60 seconds hold more
// F&O requests than the budget and no 5 minutes more than 6,000. It also
// pins the analytic capacity: just under it the promise holds, just over it
// it does not, and a burst of 10,000 new imports breaks it (while the
// request limits still hold).
func TestPollSchedule(t *testing.T) {
	t.Parallel()
	const took = importLife
	lo, hi := lifetimeCalls(deployed, took)
	capLo, capHi := capacity(deployed, took)
	t.Logf("analysis: an import living %s costs %.0f–%.0f F&O requests; a run can make %d (budget %d/min), so the poller follows %.0f–%.0f such imports a day (%.0f–%.0f in flight)",
		took, lo, hi, runRequests(deployed), deployed.Budget, capLo, capHi, capLo*took.Hours()/24, capHi*took.Hours()/24)
	perDay := 10000 * 24 / took.Hours()
	if demand := perDay * hi * deployed.Interval.Minutes() / (24 * 60); demand > float64(runRequests(deployed)) {
		t.Fatalf("analysis: 10,000 in flight need up to %.0f requests a run, over the %d a run can make", demand, runRequests(deployed))
	}
	for _, l := range loads() {
		r := simulate(deployed, l)
		t.Logf("%-16s imports %5d, in flight ≤ %5d, %6.0f req/min avg, ≤ %4d/min, ≤ %4d per 5 min; young: gap ≤ %d runs (%s), %d misses, first check ≤ %s; run ≤ %d records, %s; deferred %d",
			l.Name, r.Imports, r.MaxInFlight, r.AvgPerMinute, r.Max1Min, r.Max5Min, r.YoungGapRuns, r.YoungGapWall.Round(time.Second),
			r.YoungMisses, r.FirstCheck.Round(time.Second), r.MaxRunRecords, r.MaxRunDuration.Round(time.Second), r.Deferred)
		if r.Max5Min > odataLimit {
			t.Errorf("%s: %d F&O requests in 5 minutes, over the OData limit of %d", l.Name, r.Max5Min, odataLimit)
		}
		if r.Max1Min > deployed.Budget {
			t.Errorf("%s: %d F&O requests in 60 seconds, over the budget of %d", l.Name, r.Max1Min, deployed.Budget)
		}
		switch l.Name {
		case "steady-10k", "steady-10k-cold", "capacity-95pct":
			if r.YoungMisses != 0 || r.YoungGapRuns > 2 {
				t.Errorf("%s: %d imports younger than an hour went %d runs unchecked (want at most 2)", l.Name, r.YoungMisses, r.YoungGapRuns)
			}
			if r.MaxInFlight < 9000 {
				t.Errorf("%s: only %d in flight", l.Name, r.MaxInFlight)
			}
		case "capacity-110pct", "burst-10k", "burst-10k-cold":
			if r.YoungMisses == 0 {
				t.Errorf("%s: over capacity, yet every young import was checked every 2 runs: the analysis is off", l.Name)
			}
		}
	}
}

// seriesLoads are the loads whose requests over time BenchmarkPollSchedule
// writes for the report's chart, when BENCH_SERIES_DIR names a folder.
var seriesLoads = map[string]bool{"steady-10k": true, "burst-10k": true}

// writeSeries writes, every 10 simulated seconds, the F&O requests made in
// the 60 seconds and in the 5 minutes before: "seconds,last60s,last5min".
func writeSeries(path string, times []time.Duration) error {
	var b strings.Builder
	b.WriteString("seconds,last60s,last5min\n")
	if len(times) == 0 {
		return os.WriteFile(path, []byte(b.String()), 0o644)
	}
	end := times[len(times)-1]
	lo1, lo5, hi := 0, 0, 0
	for t := time.Duration(0); t <= end+10*time.Second; t += 10 * time.Second {
		for hi < len(times) && times[hi] <= t {
			hi++
		}
		for lo1 < hi && times[lo1] <= t-time.Minute {
			lo1++
		}
		for lo5 < hi && times[lo5] <= t-odataWindow {
			lo5++
		}
		fmt.Fprintf(&b, "%d,%d,%d\n", int(t.Seconds()), hi-lo1, hi-lo5)
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// BenchmarkPollSchedule reports the simulation's numbers per load (for
// RESULTS.md); the time per op is the simulation's, not the poller's.
func BenchmarkPollSchedule(b *testing.B) {
	for _, l := range loads() {
		b.Run(l.Name, func(b *testing.B) {
			var r simResult
			for i := 0; i < b.N; i++ {
				r = simulate(deployed, l)
			}
			b.ReportMetric(float64(r.MaxInFlight), "in-flight")
			b.ReportMetric(math.Round(r.AvgPerMinute), "req/min")
			b.ReportMetric(float64(r.Max1Min), "max-req/1min")
			b.ReportMetric(float64(r.Max5Min), "max-req/5min")
			b.ReportMetric(float64(r.YoungGapRuns), "young-gap-runs")
			b.ReportMetric(r.YoungGapWall.Minutes(), "young-gap-min")
			b.ReportMetric(float64(r.YoungMisses), "young-misses")
			b.ReportMetric(r.FirstCheck.Minutes(), "first-check-min")
			b.ReportMetric(float64(r.MaxRunRecords), "max-run-records")
			b.ReportMetric(float64(r.Deferred), "deferred")
			b.ReportMetric(r.MaxRunDuration.Seconds(), "max-run-s")
			if dir := os.Getenv("BENCH_SERIES_DIR"); dir != "" && seriesLoads[l.Name] {
				if err := writeSeries(filepath.Join(dir, "schedule-"+l.Name+".csv"), r.Times); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("analysis", func(b *testing.B) {
		lo, hi := lifetimeCalls(deployed, importLife)
		capLo, capHi := capacity(deployed, importLife)
		for i := 0; i < b.N; i++ {
			capacity(deployed, importLife)
		}
		b.ReportMetric(lo, "calls-per-import-lo")
		b.ReportMetric(hi, "calls-per-import-hi")
		b.ReportMetric(capLo, "imports/day-lo")
		b.ReportMetric(capHi, "imports/day-hi")
		b.ReportMetric(float64(runRequests(deployed)), "requests/run")
		// The setup, for the report's prose.
		b.ReportMetric(deployed.Interval.Minutes(), "interval-min")
		b.ReportMetric(deployed.Timeout.Seconds(), "timeout-s")
		b.ReportMetric(deployed.Margin.Seconds(), "margin-s")
		b.ReportMetric(float64(deployed.Budget), "budget/min")
		b.ReportMetric(float64(deployed.PerRecord.Milliseconds()), "per-record-ms")
		b.ReportMetric(float64(deployed.FinalizeCalls), "finalize-calls")
		b.ReportMetric(deployed.Unit.Minutes(), "unit-min")
		b.ReportMetric(importLife.Hours(), "import-life-h")
		b.ReportMetric(youngAge.Minutes(), "young-age-min")
		b.ReportMetric(odataLimit, "odata-limit/5min")
	})
}
