package dequeue_test

import (
	"fmt"
	"math"
	"runtime/debug"
	"testing"

	"github.com/fno-bridge/s3-fno/internal/exports/dequeue"
)

func TestMemoryLimit(t *testing.T) {
	t.Parallel()
	const mib = 1 << 20
	for _, tc := range []struct {
		name string
		env  map[string]string
		want int64
	}{
		{"defaults", nil, 8*mib*2 + 32*mib},
		{"smallest", map[string]string{"UPLOAD_PART_MIB": "5", "UPLOAD_CONCURRENCY": "1"}, 5*mib + 32*mib},
		{"configured", map[string]string{"UPLOAD_PART_MIB": "16", "UPLOAD_CONCURRENCY": "4"}, 16*mib*4 + 40*mib},
		{"large parts: the part being filled fits too", map[string]string{"UPLOAD_PART_MIB": "64", "UPLOAD_CONCURRENCY": "2"}, 64*mib*3 + 24*mib},
		{"largest", map[string]string{"UPLOAD_PART_MIB": "512", "UPLOAD_CONCURRENCY": "16"}, 512*mib*17 + 24*mib},
	} {
		env := map[string]string{"BUCKET": "b"}
		for k, v := range tc.env {
			env[k] = v
		}
		c, err := dequeue.ConfigFromEnv(func(k string) string { return env[k] })
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := c.MemoryLimit(); got != tc.want {
			t.Errorf("%s: MemoryLimit = %d, want %d", tc.name, got, tc.want)
		}
	}
	// The zero Config takes New's defaults; an absurd one does not wrap.
	if got := (dequeue.Config{}).MemoryLimit(); got != 48*mib {
		t.Errorf("zero Config: MemoryLimit = %d, want %d", got, 48*mib)
	}
	if got := (dequeue.Config{PartSize: math.MaxInt64 / 2, Concurrency: 16}).MemoryLimit(); got != math.MaxInt64 {
		t.Errorf("overflowing Config: MemoryLimit = %d, want no limit", got)
	}
}

// TestOverFunctionMemory: a limit above the function's memory is told; one
// within it, or no memory size known (outside Lambda), is not.
func TestOverFunctionMemory(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		size  string
		limit int64
		over  bool
	}{
		{"256", 48 << 20, false},
		{"256", 256 << 20, false},
		{"256", 216 << 20, false},
		{"128", 216 << 20, true},
		{"", 1 << 40, false},
		{"not a number", 1 << 40, false},
	} {
		mib, over := dequeue.OverFunctionMemory(tc.limit, func(k string) string {
			if k == "AWS_LAMBDA_FUNCTION_MEMORY_SIZE" {
				return tc.size
			}
			return ""
		})
		if over != tc.over || (over && fmt.Sprint(mib) != tc.size) {
			t.Errorf("memory %q, limit %d MiB: %d, %v; want over %v", tc.size, tc.limit>>20, mib, over, tc.over)
		}
	}
}

// TestApplyMemoryLimit: the limit comes from the config unless GOMEMLIMIT
// is set, in which case the runtime's value (read from GOMEMLIMIT at start)
// stays. Not parallel: it changes the process's limit, restored at the end.
func TestApplyMemoryLimit(t *testing.T) {
	prev := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(prev) })
	c := dequeue.Config{PartSize: 16 << 20, Concurrency: 3}

	// What the runtime would have read from GOMEMLIMIT at start.
	const operator = 300 << 20
	for _, v := range []string{"300MiB", "off"} {
		debug.SetMemoryLimit(operator)
		limit, fromEnv := dequeue.ApplyMemoryLimit(c, func(k string) string {
			if k == "GOMEMLIMIT" {
				return v
			}
			return ""
		})
		if limit != operator || !fromEnv {
			t.Errorf("GOMEMLIMIT=%s: ApplyMemoryLimit = %d, %v; want %d, true", v, limit, fromEnv, operator)
		}
		if got := debug.SetMemoryLimit(-1); got != operator {
			t.Errorf("GOMEMLIMIT=%s: runtime limit changed to %d", v, got)
		}
	}

	limit, fromEnv := dequeue.ApplyMemoryLimit(c, func(string) string { return "" })
	if want := c.MemoryLimit(); limit != want || fromEnv {
		t.Errorf("no GOMEMLIMIT: ApplyMemoryLimit = %d, %v; want %d, false", limit, fromEnv, want)
	}
	if got, want := debug.SetMemoryLimit(-1), int64(16<<20*3+40<<20); got != want { // headroom: a part and 24 MiB
		t.Errorf("no GOMEMLIMIT: runtime limit %d, want %d", got, want)
	}
}
