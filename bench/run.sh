#!/usr/bin/env bash
# bench/run.sh (make bench): runs every benchmark sub-case of ./bench in its
# own process, so each one's peak RSS (VmHWM, process-lifetime) is its own,
# and writes bench/RESULTS.md from what they print, with its SVG charts
# beside it.
#
# The test binary is built once (go test -c) and run once per sub-case with
# -test.run '^$' -test.bench '^BenchmarkX$/^case$' -test.benchmem
# -test.count 1: the same process model as one `go test -bench` per case,
# without compiling each time. Throughput pairs (a benchmark and its
# baseline) run alternately BENCH_REPEAT times (default 5; 9 for imports) and the report
# takes the median of each metric, so both sides see the same machine load.
#
# Knobs:
#   BENCH_SIZES   sizes of the streaming benchmarks (default "16MiB 256MiB 1GiB")
#   BENCH_REPEAT  alternating runs per throughput pair (default 5, and 9 for the import pair,
#                 whose ratio sits within this shared machine's noise of its goal; each of its
#                 processes also moves about 2 GiB at the default sizes, see benchtime_for)
#   BENCH_ONLY    space-separated subset of: import package export requests routing release poller schedule coldstart config
#   BENCH_OUT     where the report goes (default bench/RESULTS.md)
#   BENCH_RAW     keep the raw benchmark output here (default: a temporary file)
#   BENCH_MERGE   the raw output (BENCH_RAW) of an earlier run: its results are kept for every
#                 sub-benchmark this run does not run again, so one part can be re-run on a
#                 quieter machine (e.g. BENCH_ONLY=import BENCH_MERGE=raw.txt BENCH_RAW=raw.txt)
#   BENCH_IDLE    before each process, wait until other work uses less than this % of the
#                 CPUs (default 25), for at most 30 s per process and BENCH_WAIT seconds in
#                 all (default 180); the report says how busy the machine was at each start
set -euo pipefail

cd "$(dirname "$0")/.."
GO=${GO:-go}
SIZES=${BENCH_SIZES:-"16MiB 256MiB 1GiB"}
REPEAT=${BENCH_REPEAT:-5}
ONLY=${BENCH_ONLY:-"import package export requests routing release poller schedule coldstart config"}
OUT=${BENCH_OUT:-bench/RESULTS.md}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
RAW=${BENCH_RAW:-$work/raw.txt}
if [ -n "${BENCH_MERGE:-}" ]; then
	cp "$BENCH_MERGE" "$work/earlier.txt" # before RAW, which may be the same file, is emptied
fi
: >"$RAW"
# The poll schedule's time series for the charts: beside BENCH_RAW when it
# is kept (so a merged run still has them), else temporary.
SERIES=${BENCH_RAW:+$BENCH_RAW.series}
SERIES=${SERIES:-$work/series}
mkdir -p "$SERIES"
if [ -n "${BENCH_MERGE:-}" ] && [ -d "$BENCH_MERGE.series" ] && [ "$BENCH_MERGE.series" != "$SERIES" ]; then
	cp -n "$BENCH_MERGE.series"/* "$SERIES"/ 2>/dev/null || true
fi

echo "bench: building the test binary"
$GO test -c -o "$work/bench.test" ./bench

started=$(date +%s)
IDLE=${BENCH_IDLE:-25}
WAIT=${BENCH_WAIT:-180}

# busy: % of CPU time used (by anyone) over the last second, from /proc/stat.
busy() {
	local a b
	read -r -a a < <(grep '^cpu ' /proc/stat)
	sleep 1
	read -r -a b < <(grep '^cpu ' /proc/stat)
	local total=0 i
	for i in 1 2 3 4 5 6 7 8; do total=$((total + b[i] - a[i])); done
	local idle=$(((b[4] - a[4]) + (b[5] - a[5])))
	((total > 0)) || { echo 0; return; }
	echo $(((100 * (total - idle)) / total))
}

# quiet: wait (bounded) for the machine to calm down; log how busy it was.
quiet() {
	local waited=0 b
	b=$(busy)
	while ((b >= IDLE && waited < 30 && WAIT > 0)); do
		sleep 4
		waited=$((waited + 5))
		WAIT=$((WAIT - 5))
		b=$(busy)
	done
	echo "# busy $b waited $waited $1" >>"$RAW"
}

# one PATTERN BENCHTIME [RENAME ENV...]: one sub-case in a fresh process;
# with RENAME, the result's "BenchmarkX" is reported as RENAME, and the
# process runs with the extra ENV assignments.
one() {
	local pattern=$1 benchtime=$2 rename=${3:-} out
	local -a env=("${@:4}")
	[ -r /proc/stat ] && quiet "$pattern"
	echo "bench: $pattern ($benchtime${env:+, ${env[*]}})"
	if ! out=$(cd bench && env "${env[@]}" "$work/bench.test" -test.run '^$' -test.bench "$pattern" -test.benchmem \
		-test.count 1 -test.benchtime "$benchtime" -test.timeout 30m 2>&1); then
		echo "$out" >&2
		echo "bench: $pattern failed" >&2
		exit 1
	fi
	if [ -n "$rename" ]; then
		out=$(sed -E "s/^Benchmark[A-Za-z]+\//${rename}\//" <<<"$out")
	fi
	if ! grep -q '^Benchmark.*/op' <<<"$out"; then
		if grep -q -- '--- SKIP' <<<"$out"; then # e.g. no moto_server outside CI
			echo "bench: $pattern skipped: $(grep -A1 -- '--- SKIP' <<<"$out" | tail -1 | sed 's/^ *//')"
			echo "# skipped $pattern" >>"$RAW"
			return 0
		fi
		echo "$out" >&2
		echo "bench: $pattern printed no result" >&2
		exit 1
	fi
	grep '^Benchmark.*/op' <<<"$out" | tee -a "$RAW"
}

# pkgbench PKG: every benchmark of one package outside bench/ (small, in
# one process of its own test binary).
pkgbench() {
	local pkg=$1 bin out
	bin="$work/$(basename "$pkg").test"
	$GO test -c -o "$bin" "$pkg"
	[ -r /proc/stat ] && quiet "$pkg"
	echo "bench: $pkg"
	if ! out=$(cd "$pkg" && "$bin" -test.run '^$' -test.bench . -test.benchmem -test.count 1 -test.timeout 30m 2>&1); then
		echo "$out" >&2
		echo "bench: $pkg failed" >&2
		exit 1
	fi
	grep '^Benchmark.*/op' <<<"$out" | tee -a "$RAW"
}

# benchtime_for SIZE: iterations per process. With LONG set, each process
# moves about 2 GiB, so a short burst of other work on this shared machine
# weighs less in its figure (the import pair, whose ratio sits near its goal).
benchtime_for() {
	case $1,${LONG:+long} in
	16MiB,long) echo 120x ;;
	16MiB,) echo 30x ;;
	256MiB,long) echo 8x ;;
	256MiB,) echo 3x ;;
	*) echo 2x ;;
	esac
}

# pair TARGET BASELINE [DIAGNOSTIC ENV...]: alternate the two, REPEAT times
# per size; with DIAGNOSTIC, also TARGET under ENV, reported as DIAGNOSTIC.
# With ALSO set (a benchmark name), that one runs too, after TARGET.
pair() {
	local target=$1 baseline=$2 diag=${3:-} size bt r
	for size in $SIZES; do
		bt=$(benchtime_for "$size")
		for r in $(seq "$REPEAT"); do
			one "^${baseline}\$/^${size}\$" "$bt"
			one "^${target}\$/^${size}\$" "$bt"
			if [ -n "$diag" ]; then
				one "^${target}\$/^${size}\$" "$bt" "$diag" "${@:4}"
			fi
			if [ -n "${ALSO:-}" ]; then
				one "^${ALSO}\$/^${size}\$" "$bt"
			fi
		done
	done
}

for part in $ONLY; do
	case $part in
	# The diagnostic run: the S3 fake does not return the object's
	# checksum, so the SDK validates nothing (what that validation costs).
	import) LONG=1 REPEAT=${BENCH_REPEAT:-9} pair BenchmarkImportStreaming BenchmarkImportBaseline BenchmarkImportStreamingNoCRC BENCH_S3_CHECKSUM=off ;;
	# A plain file wrapped in its route's package template on the way to
	# blob storage, against the same bytes as plain Put Blocks.
	package) pair BenchmarkPackageImport BenchmarkPackageBaseline ;;
	# The export's baseline is a plain SDK multipart upload of the same
	# download; the download alone (into io.Discard) is the second column.
	export) ALSO=BenchmarkExportDownload pair BenchmarkExportLanding BenchmarkExportBaseline ;;
	requests) one '^BenchmarkImportRequests$' 1x ;;
	routing)
		one '^BenchmarkRouting$/^fake-sqs$' 2s
		one '^BenchmarkRouting$/^moto-sqs$' 30x
		;;
	release)
		for n in 1 100 5000; do
			one "^BenchmarkRelease\$/^${n}\$" 3x
		done
		;;
	poller)
		one '^BenchmarkPollerAtScale$/^one-minute$' 1x
		one '^BenchmarkPollerAtScale$/^lambda-120s$' 1x
		;;
	schedule) one '^BenchmarkPollSchedule$' 1x "" BENCH_SERIES_DIR="$SERIES" ;;
	coldstart)
		for fn in router enqueue poller dequeue; do
			one "^BenchmarkColdStart\$/^${fn}\$" 10x
		done
		;;
	# The configuration document at scale and the status view's requests.
	config)
		pkgbench ./internal/shared/config
		pkgbench ./internal/ops/status
		;;
	*)
		echo "bench: unknown part $part" >&2
		exit 2
		;;
	esac
done

# merge: the earlier run's lines for the sub-benchmarks this run did not
# run, then this run's.
if [ -n "${BENCH_MERGE:-}" ]; then
	awk 'FNR == NR { if ($1 ~ /^Benchmark/) { n = $1; sub(/-[0-9]+$/, "", n); fresh[n] = 1 }; next }
		$1 ~ /^Benchmark/ { n = $1; sub(/-[0-9]+$/, "", n); if (n in fresh) next }
		{ print }' "$RAW" "$work/earlier.txt" >"$work/merged.txt"
	cat "$RAW" >>"$work/merged.txt"
	cp "$work/merged.txt" "$RAW"
	echo "bench: kept the results of $BENCH_MERGE for what this run did not run"
fi

took=$(($(date +%s) - started))
$GO run ./bench/report -raw "$RAW" -out "$OUT" -sizes "$SIZES" -repeat "$REPEAT" -took "${took}s" -idle "$IDLE" -series "$SERIES"
echo "bench: wrote $OUT in ${took}s"
