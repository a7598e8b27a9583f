package bench_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/fno-bridge/s3-fno/internal/local/lambdahost"
	"github.com/fno-bridge/s3-fno/internal/local/mototest"
	"github.com/fno-bridge/s3-fno/internal/local/pipelinetest"
	"github.com/fno-bridge/s3-fno/pkg/d365/d365test"
)

// buildBootstrap builds a function the way the Makefile's build-<Id>
// targets do for Lambda: linux, CGO off, -tags lambda.norpc, -trimpath,
// stripped (-ldflags "-s -w").
func buildBootstrap(b *testing.B, pkg, arch, out string) int64 {
	b.Helper()
	cmd := exec.Command("go", "build", "-tags", "lambda.norpc", "-trimpath", "-ldflags", "-s -w", "-o", out, pkg)
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
	if msg, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("build %s for %s: %v\n%s", pkg, arch, err, msg)
	}
	fi, err := os.Stat(out)
	if err != nil {
		b.Fatal(err)
	}
	return fi.Size()
}

// BenchmarkColdStart builds each function's bootstrap stripped for Linux
// (size-MiB for amd64, which runs here, and arm64, the template's default
// architecture) and starts it behind the project's Runtime API host
// (lambdahost) with a valid environment (moto for AWS, the emulator for
// F&O), once per op: cold-start-ms is lambdahost's Host.ColdStart(),
// from process start to the runtime's first GET /runtime/invocation/next
// (init: config, clients). Each start is followed by one harmless
// invocation, so the environment is proven usable.
func BenchmarkColdStart(b *testing.B) {
	functions := []struct {
		name, pkg string
		event     func(dir string) []byte
	}{
		{"router", "./functions/router", func(string) []byte {
			raw, err := os.ReadFile("../events/router-test-event.json")
			if err != nil {
				b.Fatal(err)
			}
			return raw
		}},
		{"enqueue", "./functions/enqueue", func(string) []byte { return []byte(`{"Records":[]}`) }},
		{"poller", "./functions/poller", func(string) []byte { return []byte(`{"task":"poll"}`) }},
		{"dequeue", "./functions/dequeue", func(string) []byte {
			return []byte(`{"job":"bench","activityId":"` + actExport + `"}`)
		}},
	}
	for _, fn := range functions {
		b.Run(fn.name, func(b *testing.B) {
			dir := b.TempDir()
			bin := filepath.Join(dir, "bootstrap")
			size := buildBootstrap(b, fn.pkg, "amd64", bin)
			sizeARM := buildBootstrap(b, fn.pkg, "arm64", filepath.Join(dir, "arm64", "bootstrap"))

			emu := d365test.NewT(b, d365test.Options{})
			emu.AddActivity(actExport, d365test.Activity{Kind: d365test.Package})
			ca := filepath.Join(dir, "emulator-ca.pem")
			if err := os.WriteFile(ca, emu.CertPEM(), 0o600); err != nil {
				b.Fatal(err)
			}
			queue, _ := pipelinetest.NewFIFO(b, mototest.SQS(b), pipelinetest.FIFO{})
			env := map[string]string{
				"FNO_BASE_URL": emu.URL(), "FNO_TENANT_ID": emu.TenantID(), "FNO_CLIENT_ID": emu.ClientID(),
				// The emulator's CA as the system roots, not FNO_CA_BUNDLE:
				// on AWS no bundle is set and the roots are read at the
				// first TLS handshake, not at init; a bundle makes init
				// parse the system roots too.
				"FNO_CLIENT_SECRET": emu.ClientSecret(), "SSL_CERT_FILE": ca, "SSL_CERT_DIR": dir,
				"FNO_AUTHORITY_HOST": strings.TrimSuffix(emu.AuthorityURL(), "/"+emu.TenantID()),
				"BUCKET":             mototest.NewBucket(b), "ROUTES": importRoutes, "IMPORT_QUEUE_URL": queue,
			}
			for _, kv := range mototest.Env(b) {
				k, v, _ := strings.Cut(kv, "=")
				env[k] = v
			}
			event := fn.event(dir)
			var starts []time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				h, err := lambdahost.Start(context.Background(), lambdahost.Function{
					Name: fn.name, Bootstrap: bin, Env: env, Timeout: 60 * time.Second, MemoryMB: 512,
				})
				if err != nil {
					b.Fatal(err)
				}
				res, err := h.Invoke(context.Background(), event)
				starts = append(starts, h.ColdStart())
				h.Close()
				if err != nil || res.Err() != nil {
					b.Fatalf("invoke: %v %v: %s", err, res.Err(), res.Payload)
				}
			}
			b.StopTimer()
			sort.Slice(starts, func(i, j int) bool { return starts[i] < starts[j] })
			ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
			b.ReportMetric(float64(size)/(1<<20), "size-MiB")
			b.ReportMetric(float64(sizeARM)/(1<<20), "arm64-size-MiB")
			b.ReportMetric(ms(starts[len(starts)/2]), "cold-start-ms")
			b.ReportMetric(ms(starts[len(starts)-1]), "max-cold-start-ms")
		})
	}
}
