package poller_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/fno-bridge/s3-fno/internal/imports/poller"
	"github.com/fno-bridge/s3-fno/internal/local/pipelinetest"
	"github.com/fno-bridge/s3-fno/pkg/d365"
)

// hookS3 is moto's S3 with hooks on the calls the lease makes, for one
// poller (one execution environment).
type hookS3 struct {
	*s3.Client
	getErr   func(key string) error // non-nil: GetObject fails with it
	putErr   func(key string) error // non-nil: PutObject fails with it
	delErr   func(key string) error // non-nil: DeleteObject fails with it
	afterGet func(key string)
	beforePut,
	beforeDel func(ctx context.Context, key string, ifMatch, ifNoneMatch string)
}

func (h *hookS3) GetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	if h.getErr != nil {
		if err := h.getErr(aws.ToString(in.Key)); err != nil {
			return nil, err
		}
	}
	out, err := h.Client.GetObject(ctx, in, opts...)
	if h.afterGet != nil {
		h.afterGet(aws.ToString(in.Key))
	}
	return out, err
}

// conditionalPuts makes the contenders' conditional writes one at a time,
// as S3 does: moto_server checks If-None-Match and If-Match, then writes,
// in two steps on a threaded server, so on a busy machine two writes can
// both pass the check.
var conditionalPuts sync.Mutex

func (h *hookS3) PutObject(ctx context.Context, in *s3.PutObjectInput, opts ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	if h.beforePut != nil {
		h.beforePut(ctx, aws.ToString(in.Key), aws.ToString(in.IfMatch), aws.ToString(in.IfNoneMatch))
	}
	if h.putErr != nil {
		if err := h.putErr(aws.ToString(in.Key)); err != nil {
			return nil, err
		}
	}
	if in.IfMatch != nil || in.IfNoneMatch != nil {
		conditionalPuts.Lock()
		defer conditionalPuts.Unlock()
	}
	return h.Client.PutObject(ctx, in, opts...)
}

func (h *hookS3) DeleteObject(ctx context.Context, in *s3.DeleteObjectInput, opts ...func(*s3.Options)) (*s3.DeleteObjectOutput, error) {
	if h.beforeDel != nil {
		h.beforeDel(ctx, aws.ToString(in.Key), aws.ToString(in.IfMatch), "")
	}
	if h.delErr != nil {
		if err := h.delErr(aws.ToString(in.Key)); err != nil {
			return nil, err
		}
	}
	return h.Client.DeleteObject(ctx, in, opts...)
}

// pollerWith is another execution environment (own, full budget) whose S3
// client is s3c.
func (f *fixture) pollerWith(t *testing.T, s3c poller.S3) *poller.Poller {
	t.Helper()
	b := poller.NewBudget(f.pcfg.BudgetPerMinute)
	p, err := poller.New(f.pcfg, s3c, pipelinetest.FnO(t, f.emu, func(c *d365.Config) { c.Limiter = b }), b, f.sqs, pipelinetest.Quiet())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// lease is the lease document as a test sees it.
type lease struct {
	Holder     string    `json:"holder"`
	AcquiredAt time.Time `json:"acquiredAt"`
	Expires    time.Time `json:"expires"`
}

func (f *fixture) plantLease(t *testing.T, body []byte) (etag string) {
	t.Helper()
	_, etag = pipelinetest.Put(t, f.s3, f.bucket, f.layout.PollerLeaseKey(), body)
	return etag
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func waitFor(wg *sync.WaitGroup, d time.Duration) bool {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}

// TestLeaseOneRunAtATime: two runs in two execution environments start
// together and both try the conditional write before either has written
// (with no lease, the unread If-None-Match; with an expired one, the
// If-Match on the ETag both read), and S3 (here moto) lets exactly one
// through. The other
// reads the winner's lease and does nothing: one F&O status check, not
// two. The winner's release is held back until the loser has answered, so
// the loser cannot simply run after it. Then the lease is gone and the
// next run proceeds.
func TestLeaseOneRunAtATime(t *testing.T) {
	for _, start := range []string{"no lease", "an expired lease"} {
		t.Run(start, func(t *testing.T) {
			f := newFixture(t, options{})
			f.enqueue(t, map[string]string{"inbound/customers/race.csv": "x"})
			f.emu.RunToCompletion()
			now := time.Now().Add(2 * time.Minute)
			f.clock.Set(now)
			if start == "an expired lease" {
				f.plantLease(t, mustJSON(t, lease{Holder: "dead run", AcquiredAt: now.Add(-3 * time.Minute), Expires: now.Add(-time.Second)}))
			}
			key := f.layout.PollerLeaseKey()
			var both sync.WaitGroup
			both.Add(2)
			release := make(chan struct{})
			contender := func() *poller.Poller {
				var first sync.Once
				together := func() {
					first.Do(func() {
						both.Done()
						if !waitFor(&both, 10*time.Second) {
							t.Error("the other run never got as far")
						}
					})
				}
				h := &hookS3{Client: f.s3,
					beforeDel: func(_ context.Context, k, _, _ string) {
						if k == key {
							select {
							case <-release:
							case <-time.After(10 * time.Second):
								t.Error("a release waited for the other run, which never answered: both runs hold the lease")
							}
						}
					},
				}
				if start == "no lease" {
					h.beforePut = func(_ context.Context, k, _, ifNoneMatch string) {
						if k == key && ifNoneMatch == "*" {
							together()
						}
					}
				} else {
					h.afterGet = func(k string) {
						if k == key {
							together()
						}
					}
				}
				return f.pollerWith(t, h)
			}
			before := f.emu.TotalRequests()
			results := make(chan poller.Summary, 2)
			for _, p := range []*poller.Poller{contender(), contender()} {
				go func() {
					s, err := p.Handle(context.Background(), json.RawMessage(`{"task":"poll"}`))
					if err != nil {
						t.Error(err)
					}
					results <- s
				}()
			}
			loser := <-results // the winner cannot answer before release is closed
			close(release)
			winner := <-results
			if !strings.HasPrefix(loser.Skipped, "another run holds the lease until ") || loser.Calls != 0 || loser.Due != 0 || loser.Errors != 0 {
				t.Fatalf("first answer = %+v, want a run skipped for the lease", loser)
			}
			if winner.Skipped != "" || winner.Finalized != 1 || winner.Checked != 1 {
				t.Fatalf("second answer = %+v, want the run that took the lease", winner)
			}
			if n := f.emu.Requests("GetMessageStatus"); n != 1 || int64(f.emu.TotalRequests()-before) != winner.Calls {
				t.Fatalf("%d GetMessageStatus calls, %d F&O requests (winner counted %d): only one run may call F&O",
					n, f.emu.TotalRequests()-before, winner.Calls)
			}
			if _, ok := pipelinetest.Get(t, f.s3, f.bucket, key); ok {
				t.Fatalf("the lease is still there after the run: %v", pipelinetest.Keys(t, f.s3, f.bucket, "_state/"))
			}
			if s, _ := f.p.Handle(context.Background(), nil); s.Skipped != "" || s.Errors != 0 {
				t.Fatalf("the next run = %+v, want it to take the released lease", s)
			}
		})
	}
}

// TestLeaseHeld: while another run's lease lasts (by its expires field, on
// the poller's clock) a run makes no F&O call, does not sweep, leaves the
// lease alone and says until when; from the moment it expires the next
// run takes it over and does the work, and releases it after.
func TestLeaseHeld(t *testing.T) {
	f := newFixture(t, options{})
	f.enqueue(t, map[string]string{"inbound/customers/held.csv": "x"})
	pipelinetest.Put(t, f.s3, f.bucket, "inbound/vendors/lost.csv", []byte("lost"))
	f.emu.RunToCompletion()
	now := time.Now().Add(time.Hour)
	until := now.Add(90 * time.Second)
	held := mustJSON(t, lease{Holder: "other run", AcquiredAt: now, Expires: until})
	f.plantLease(t, held)
	before := f.emu.TotalRequests()

	f.clock.Set(now)
	s, err := f.p.Handle(context.Background(), json.RawMessage(`{"task":"poll"}`))
	want := poller.Summary{Skipped: "another run holds the lease until " + until.UTC().Format(time.RFC3339)}
	if err != nil || s != want {
		t.Fatalf("summary = %+v, %v; want %+v", s, err, want)
	}
	if f.emu.TotalRequests() != before || pipelinetest.Depth(t, f.sqs, f.queue) != 0 {
		t.Fatalf("a skipped run called F&O %d times or swept", f.emu.TotalRequests()-before)
	}
	if body, _ := pipelinetest.Get(t, f.s3, f.bucket, f.layout.PollerLeaseKey()); !bytes.Equal(body, held) {
		t.Fatalf("the held lease was changed: %s", body)
	}

	f.clock.Set(until.Add(-time.Nanosecond))
	if s, _ := f.p.Handle(context.Background(), nil); s.Skipped == "" {
		t.Fatalf("a run just before the lease expires = %+v", s)
	}
	f.clock.Set(until)
	s, _ = f.p.Handle(context.Background(), nil)
	if s.Skipped != "" || s.Finalized != 1 || s.Swept != 1 || s.Errors != 0 {
		t.Fatalf("a run once the lease expired = %+v", s)
	}
	if _, ok := pipelinetest.Get(t, f.s3, f.bucket, f.layout.PollerLeaseKey()); ok {
		t.Fatal("the run that took over the expired lease did not release it")
	}
}

// TestLeaseTakeover: a lease document that is no lease (not JSON, another
// JSON value, one with no expiry, one expiring implausibly far ahead) does
// not block the poller: the run takes it over with If-Match on that
// object's ETag, as it does an expired one. The lease it writes lasts
// until the invocation's deadline plus a little.
func TestLeaseTakeover(t *testing.T) {
	for name, doc := range map[string]string{
		"not JSON":     `{"holder": "half a lease`,
		"a JSON array": `[1, 2]`,
		"no expiry":    `{"holder":"x"}`,
		"a year ahead": `{"holder":"x","expires":"` + time.Now().AddDate(1, 0, 0).UTC().Format(time.RFC3339) + `"}`,
		"expired":      `{"holder":"x","expires":"` + time.Now().Add(-time.Minute).UTC().Format(time.RFC3339Nano) + `"}`,
	} {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, options{})
			f.enqueue(t, map[string]string{"inbound/customers/t.csv": "x"})
			f.emu.RunToCompletion()
			etag := f.plantLease(t, []byte(doc))
			key := f.layout.PollerLeaseKey()
			type write struct{ ifMatch, ifNoneMatch string }
			var writes []write
			var written lease
			p := f.pollerWith(t, &hookS3{Client: f.s3,
				beforePut: func(_ context.Context, k, ifMatch, ifNoneMatch string) {
					if k == key {
						writes = append(writes, write{ifMatch, ifNoneMatch})
					}
				},
				beforeDel: func(_ context.Context, k, _, _ string) {
					if k == key {
						raw, _ := pipelinetest.Get(t, f.s3, f.bucket, key)
						if err := json.Unmarshal(raw, &written); err != nil {
							t.Errorf("the lease written is not JSON: %s", raw)
						}
					}
				},
			})
			now := time.Now().Add(2 * time.Minute)
			f.clock.Set(now)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			s, err := p.Handle(ctx, nil)
			if err != nil || s.Skipped != "" || s.Finalized != 1 || s.Errors != 0 {
				t.Fatalf("summary = %+v, %v", s, err)
			}
			// The unread If-None-Match finds the lease there; the take-over
			// is conditional on the ETag read.
			if len(writes) != 2 || writes[0] != (write{"", "*"}) || strings.Trim(writes[1].ifMatch, `"`) != etag || writes[1].ifNoneMatch != "" {
				t.Fatalf("lease writes %+v, want If-None-Match: *, then If-Match on %s", writes, etag)
			}
			if !written.AcquiredAt.Equal(now) || written.Holder == "" || written.Holder == "x" {
				t.Fatalf("lease written = %+v", written)
			}
			if d := written.Expires.Sub(written.AcquiredAt); d <= 10*time.Second || d > time.Minute+10*time.Second {
				t.Fatalf("the lease lasts %s; want the time to the deadline (at most 1m) plus 10s", d)
			}
			if _, ok := pipelinetest.Get(t, f.s3, f.bucket, key); ok {
				t.Fatal("the lease was not released")
			}
		})
	}
}

// TestLeaseReleaseLeavesATakenOverLease: a run whose lease was taken over
// while it ran (it outlived its lease) does not delete the new holder's
// lease on its way out: the release is conditional on the ETag it wrote.
func TestLeaseReleaseLeavesATakenOverLease(t *testing.T) {
	f := newFixture(t, options{})
	key := f.layout.PollerLeaseKey()
	other := mustJSON(t, lease{Holder: "the next run", AcquiredAt: time.Now(), Expires: time.Now().Add(time.Minute)})
	p := f.pollerWith(t, &hookS3{Client: f.s3,
		beforeDel: func(_ context.Context, k, ifMatch, _ string) {
			if k == key {
				if ifMatch == "" {
					t.Error("the lease is released without If-Match")
				}
				if _, err := f.s3.PutObject(context.Background(), &s3.PutObjectInput{Bucket: &f.bucket, Key: &key,
					Body: bytes.NewReader(other), IfMatch: aws.String(ifMatch)}); err != nil {
					t.Errorf("take-over by hand: %v", err)
				}
			}
		},
	})
	f.clock.Set(time.Now())
	if s, _ := p.Handle(context.Background(), nil); s.Skipped != "" {
		t.Fatalf("summary = %+v", s)
	}
	if body, ok := pipelinetest.Get(t, f.s3, f.bucket, key); !ok || !bytes.Equal(body, other) {
		t.Fatalf("lease after the release = %s (%v), want the other run's", body, ok)
	}
}

// TestLeaseUnreadable: when S3 cannot say who holds the lease that is
// there, the run does nothing (no F&O call) and counts an error; the next
// run tries again (and takes the expired lease over).
func TestLeaseUnreadable(t *testing.T) {
	f := newFixture(t, options{})
	f.enqueue(t, map[string]string{"inbound/customers/u.csv": "x"})
	f.emu.RunToCompletion()
	f.plantLease(t, mustJSON(t, lease{Holder: "dead run", AcquiredAt: time.Now().Add(-time.Hour), Expires: time.Now().Add(-time.Minute)}))
	key := f.layout.PollerLeaseKey()
	broken := true
	p := f.pollerWith(t, &hookS3{Client: f.s3, getErr: func(k string) error {
		if k == key && broken {
			return io.ErrUnexpectedEOF
		}
		return nil
	}})
	f.clock.Set(time.Now().Add(2 * time.Minute))
	s, _ := p.Handle(context.Background(), nil)
	if s.Errors != 1 || !strings.Contains(s.Skipped, "lease could not be taken") || s.Calls != 0 || f.emu.Requests("GetMessageStatus") != 0 {
		t.Fatalf("summary = %+v", s)
	}
	broken = false
	if s, _ := p.Handle(context.Background(), nil); s.Skipped != "" || s.Finalized != 1 {
		t.Fatalf("next run = %+v", s)
	}
}

// TestLeaseWriteRefused: when S3 refuses the lease write for another
// reason than a lost race (here a 403), the run does not read the lease or
// go on without it: it does nothing (no F&O call) and counts an error; the
// next run takes the lease.
func TestLeaseWriteRefused(t *testing.T) {
	f := newFixture(t, options{})
	f.enqueue(t, map[string]string{"inbound/customers/w.csv": "x"})
	f.emu.RunToCompletion()
	key := f.layout.PollerLeaseKey()
	refused, reads := true, 0
	p := f.pollerWith(t, &hookS3{Client: f.s3,
		putErr: func(k string) error {
			if k == key && refused {
				return &smithy.GenericAPIError{Code: "AccessDenied", Message: "injected"}
			}
			return nil
		},
		afterGet: func(k string) {
			if k == key {
				reads++
			}
		},
	})
	f.clock.Set(time.Now().Add(2 * time.Minute))
	s, _ := p.Handle(context.Background(), nil)
	if s.Errors != 1 || !strings.Contains(s.Skipped, "lease could not be taken") || s.Calls != 0 || f.emu.Requests("GetMessageStatus") != 0 || reads != 0 {
		t.Fatalf("summary = %+v, lease read %d times", s, reads)
	}
	refused = false
	if s, _ := p.Handle(context.Background(), nil); s.Skipped != "" || s.Finalized != 1 {
		t.Fatalf("next run = %+v", s)
	}
}
