package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/fno-bridge/s3-fno/internal/imports/enqueue"
	"github.com/fno-bridge/s3-fno/internal/imports/pause"
	"github.com/fno-bridge/s3-fno/internal/imports/poller"
	"github.com/fno-bridge/s3-fno/internal/imports/router"
	"github.com/fno-bridge/s3-fno/internal/local/pipelinetest"
	"github.com/fno-bridge/s3-fno/pkg/d365"
	"github.com/fno-bridge/s3-fno/pkg/d365/d365test"
)

// orderRoutes: "journal" is ordered by the time S3 stored a file (then
// key), "numbered" by name; both settle for 1s.
const orderRoutes = `[
 {"route":"journal","activityId":"` + pipelinetest.ActCustomers + `","entity":"Journal","settle":"1s"},
 {"route":"numbered","activityId":"` + pipelinetest.ActVendors + `","entity":"Numbered","order":"name","settle":"1s"}]`

// orderRig is the import pipeline in-process on moto and the emulator, with
// the notifications handed to the router by the test, in any order.
type orderRig struct {
	t      *testing.T
	w      *pipelinetest.Imports
	emu    *d365test.Emulator
	router *router.Router
	enq    *enqueue.Handler
	poller *poller.Poller
	drops  []dropped
}

type dropped struct {
	key, version, etag, route string
	lastModified              time.Time
}

func newOrderRig(t *testing.T) *orderRig { return newRigWith(t, orderRoutes) }

// newRigWith is the rig over the given ROUTES; a route that asks to be
// paused on failure is.
func newRigWith(t *testing.T, routesJSON string) *orderRig {
	t.Helper()
	w := pipelinetest.NewImports(t, pipelinetest.FIFO{})
	emu := pipelinetest.Emulator(t, d365test.Options{}, true)
	env := w.Env(routesJSON)
	getenv := func(k string) string { return env[k] }
	log := pipelinetest.Quiet()
	rcfg, err := router.ConfigFromEnv(getenv)
	if err != nil {
		t.Fatal(err)
	}
	rt, err := router.New(rcfg, w.S3, w.SQS, log)
	if err != nil {
		t.Fatal(err)
	}
	icfg, err := enqueue.ConfigFromEnv(getenv)
	if err != nil {
		t.Fatal(err)
	}
	enq, err := enqueue.New(icfg, w.S3, pipelinetest.FnO(t, emu), w.SQS, log)
	if err != nil {
		t.Fatal(err)
	}
	pcfg, err := poller.ConfigFromEnv(getenv)
	if err != nil {
		t.Fatal(err)
	}
	// An hour ahead: every file is old enough for the sweep.
	pcfg.Now, pcfg.SweepEvery = func() time.Time { return time.Now().Add(time.Hour) }, -1
	pcfg.Observers.Pause = pause.OnFailureOf(pcfg.Routes, w.S3, w.Bucket, pcfg.Layout, log)
	budget := poller.NewBudget(pcfg.BudgetPerMinute)
	pl, err := poller.New(pcfg, w.S3, pipelinetest.FnO(t, emu, func(c *d365.Config) { c.Limiter = budget }), budget, w.SQS, log)
	if err != nil {
		t.Fatal(err)
	}
	return &orderRig{t: t, w: w, emu: emu, router: rt, enq: enq, poller: pl}
}

// drop puts n files into a route about 200 ms apart, as a producer would;
// name gives the i-th file's name.
func (r *orderRig) drop(route string, n int, name func(i int) string) {
	for i := range n {
		key := "inbound/" + route + "/" + name(i)
		v, etag := pipelinetest.Put(r.t, r.w.S3, r.w.Bucket, key, []byte(fmt.Sprintf("row %d of %s\n", i, route)))
		out, err := r.w.S3.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: &r.w.Bucket, Key: &key})
		if err != nil {
			r.t.Fatal(err)
		}
		r.drops = append(r.drops, dropped{key: key, version: v, etag: etag, route: route, lastModified: aws.ToTime(out.LastModified)})
		time.Sleep(200 * time.Millisecond)
	}
}

// notifications are the S3 notification bodies of the drops, in drop order.
func (r *orderRig) notifications() []string {
	var out []string
	for _, d := range r.drops {
		out = append(out, pipelinetest.S3Event(r.w.Bucket, d.key, d.version, d.etag, 10))
	}
	return out
}

// notify hands bodies to the router as one batch.
func (r *orderRig) notify(bodies ...string) {
	r.t.Helper()
	var ev events.SQSEvent
	for i, b := range bodies {
		ev.Records = append(ev.Records, pipelinetest.Message(fmt.Sprintf("n-%d", i), b))
	}
	resp, err := r.router.Handle(context.Background(), ev)
	if err != nil || len(resp.BatchItemFailures) != 0 {
		r.t.Fatalf("router: %v %v", resp.BatchItemFailures, err)
	}
}

// enqueueAll runs the enqueue function over the FIFO queue until it is
// quiet: release passes, then the files they released.
func (r *orderRig) enqueueAll() {
	r.t.Helper()
	esm := &pipelinetest.ESM{SQS: r.w.SQS, QueueURL: r.w.Queue, BatchSize: 1}
	esm.Drain(r.t, context.Background(), r.enq.Handle)
}

// want is each route's drop order by its rule: for "journal" the second
// S3 stored the file in (Last-Modified), then key; for "numbered" the key.
func (r *orderRig) want(route string) []string {
	var ds []dropped
	for _, d := range r.drops {
		if d.route == route {
			ds = append(ds, d)
		}
	}
	slices.SortFunc(ds, func(a, b dropped) int {
		if route == "journal" {
			if c := a.lastModified.Truncate(time.Second).Compare(b.lastModified.Truncate(time.Second)); c != 0 {
				return c
			}
		}
		return strings.Compare(a.key, b.key)
	})
	var keys []string
	for _, d := range ds {
		keys = append(keys, d.key)
	}
	return keys
}

// check: F&O got each route's files in the route's drop order, each once.
func (r *orderRig) check() {
	r.t.Helper()
	got := map[string][]string{}
	activity := map[string]string{pipelinetest.ActCustomers: "journal", pipelinetest.ActVendors: "numbered"}
	for _, m := range r.emu.Messages() {
		got[activity[m.ActivityID]] = append(got[activity[m.ActivityID]], m.ExternalID)
	}
	for _, route := range []string{"journal", "numbered"} {
		if want := r.want(route); !slices.Equal(got[route], want) {
			r.t.Errorf("%s reached F&O as\n %v\nwant the drop order\n %v", route, got[route], want)
		}
	}
}

// journalName names files so that key order is not drop order.
func journalName(i int) string { return fmt.Sprintf("%c-entry.csv", "qzamxcbk"[i]) }

func numberedName(i int) string { return fmt.Sprintf("journal-%04d.csv", i+1) }

// TestDropOrder: whatever order S3's notifications arrive in, and however
// they are delayed, repeated, split over concurrent router invocations or
// lost, one route's files reach F&O in the route's drop order, each once.
func TestDropOrder(t *testing.T) {
	t.Parallel()
	scenarios := []struct {
		name    string
		deliver func(r *orderRig, bodies []string)
	}{
		{"shuffled in one batch", func(r *orderRig, bodies []string) {
			rng := rand.New(rand.NewPCG(1, 2))
			rng.Shuffle(len(bodies), func(i, j int) { bodies[i], bodies[j] = bodies[j], bodies[i] })
			r.notify(bodies...)
			r.enqueueAll()
		}},
		{"delayed, youngest first", func(r *orderRig, bodies []string) {
			for i := len(bodies) - 1; i >= 0; i-- {
				r.notify(bodies[i])
				r.enqueueAll() // each pass runs before the older files' notifications arrive
			}
		}},
		{"each delivered twice", func(r *orderRig, bodies []string) {
			r.notify(bodies[len(bodies)/2:]...)
			r.notify(bodies...)
			r.enqueueAll()
			r.notify(bodies[:len(bodies)/2]...)
			r.enqueueAll()
		}},
		{"split over two concurrent router invocations", func(r *orderRig, bodies []string) {
			var a, b []string
			for i, body := range bodies {
				if i%2 == 0 {
					a = append(a, body)
				} else {
					b = append(b, body)
				}
			}
			slices.Reverse(b)
			var wg sync.WaitGroup
			for _, half := range [][]string{a, b} {
				wg.Go(func() { r.notify(half...) })
			}
			wg.Wait()
			r.enqueueAll()
		}},
		{"the oldest and the youngest notifications lost", func(r *orderRig, bodies []string) {
			// Each route's first and last notifications never come: the
			// passes the others bring list the folder and find them.
			var kept []string
			for i, body := range bodies {
				if i%6 != 0 && i%6 != 5 {
					kept = append(kept, body)
				}
			}
			r.notify(kept...)
			r.enqueueAll()
		}},
	}
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			r := newOrderRig(t)
			r.drop("journal", 6, journalName)
			r.drop("numbered", 6, numberedName)
			sc.deliver(r, r.notifications())
			r.check()
		})
	}
}

// TestLostNotificationOfALoneFileIsSwept: a file whose notification never
// came, with no other file of its route to bring a pass, is found by the
// poller's sweep and released after the files before it.
func TestLostNotificationOfALoneFileIsSwept(t *testing.T) {
	t.Parallel()
	r := newOrderRig(t)
	r.drop("numbered", 3, numberedName)
	bodies := r.notifications()
	r.notify(bodies[:2]...)
	r.enqueueAll()
	// The third file was there when the pass ran: it went too.
	if n := len(r.emu.Messages()); n != 3 {
		t.Fatalf("%d files reached F&O, want all 3 (the pass lists the folder)", n)
	}
	r.drop("numbered", 1, func(int) string { return "journal-0009.csv" }) // notification lost
	r.enqueueAll()
	s, err := r.poller.Handle(context.Background(), json.RawMessage(`{"task":"poll"}`))
	if err != nil || s.Swept != 1 {
		t.Fatalf("sweep = %+v, %v; want the lost file found", s, err)
	}
	r.enqueueAll()
	r.check()
}
