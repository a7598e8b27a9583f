package dequeue

import (
	"math"
	"runtime/debug"
	"strconv"
	"strings"
)

// MemoryHeadroom is what the memory bound allows besides the parts in
// flight, at least: the part being filled from the download meanwhile, TLS
// and HTTP buffers, the SDK clients, the Go runtime. With parts over 8 MiB
// the headroom is a part and 24 MiB.
const MemoryHeadroom int64 = 32 << 20

// MemoryLimit is the soft memory limit for a process that lands exports
// with c: PartSize × Concurrency + the headroom (48 MiB with the
// defaults), the bound the landing's live heap stays within.
//
// Why a limit: the part buffers (Concurrency + 1 of PartSize, pooled
// across uploads by internal/exports/s3upload) stay live for the life of
// the execution environment, so with GOGC=100 alone the GC would let the
// heap grow to about twice that before collecting what the HTTP, TLS and
// SDK code allocate per request, past the bound. The limit makes the GC
// collect before it passes the bound; since no part buffer is allocated per
// upload, what it collects is small and the GC runs seldom. No margin is
// added: the runtime counts all of its memory (heap, stacks, GC metadata)
// against the limit, so the heap in use stays under the bound by those
// overheads; a larger limit would let it pass, and a smaller one would sit
// closer to the live peak and cost GC CPU for nothing.
//
// Zero fields take their defaults, as in New.
func (c Config) MemoryLimit() int64 {
	part, conc := c.PartSize, int64(c.Concurrency)
	if part <= 0 {
		part = DefaultPartSize
	}
	if conc <= 0 {
		conc = DefaultConcurrency
	}
	if part > (math.MaxInt64-MemoryHeadroom)/(conc+1) {
		return math.MaxInt64
	}
	// The pool keeps Concurrency + 1 parts: the one being filled must fit
	// in the headroom, or the GC would run without end above the limit.
	return part*conc + max(MemoryHeadroom, part+24<<20)
}

// OverFunctionMemory reports the function's memory in MiB when limit is
// above it (AWS_LAMBDA_FUNCTION_MEMORY_SIZE; getenv is os.Getenv outside
// tests): the landing's part buffers then do not fit, and a large export
// runs the function out of memory.
func OverFunctionMemory(limit int64, getenv func(string) string) (functionMiB int64, over bool) {
	mib, err := strconv.ParseInt(strings.TrimSpace(getenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")), 10, 64)
	if err != nil || mib <= 0 {
		return 0, false
	}
	return mib, limit > mib<<20
}

// ApplyMemoryLimit sets the runtime's soft memory limit to c.MemoryLimit(),
// unless the GOMEMLIMIT variable is set (getenv is os.Getenv outside
// tests): the runtime has read it at start, and an explicit setting (a
// size, or "off" for none) is the operator's choice. It returns the limit
// in force and whether it came from GOMEMLIMIT. Call it once, at start,
// before the first export.
func ApplyMemoryLimit(c Config, getenv func(string) string) (limit int64, fromEnv bool) {
	if strings.TrimSpace(getenv("GOMEMLIMIT")) != "" {
		return debug.SetMemoryLimit(-1), true
	}
	limit = c.MemoryLimit()
	debug.SetMemoryLimit(limit)
	return limit, false
}
