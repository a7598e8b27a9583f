package poller

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/fno-bridge/s3-fno/internal/imports/release"
	"github.com/fno-bridge/s3-fno/internal/shared/layout"
	"github.com/fno-bridge/s3-fno/internal/shared/routes"
)

// nopFnO is F&O that must not be called (the bucket holds nothing to poll).
type nopFnO struct{ FnO }

type nopSender struct{}

func (nopSender) SendMessageBatch(_ context.Context, in *sqs.SendMessageBatchInput, _ ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error) {
	out := &sqs.SendMessageBatchOutput{}
	for _, e := range in.Entries {
		out.Successful = append(out.Successful, sqstypes.SendMessageBatchResultEntry{Id: e.Id, MessageId: aws.String("m")})
	}
	return out, nil
}

func fuzzConfig(t testing.TB) Config {
	rt, err := routes.Parse(`[{"route":"customers","activityId":"5d3c1e0a-7b64-4e7a-9b2f-8f6b3a521c0d","entity":"Customer groups"}]`)
	if err != nil {
		t.Fatal(err)
	}
	return Config{Config: release.Config{Config: routes.Config{Bucket: "b", Routes: rt, Layout: layout.Default()}, QueueURL: "https://sqs/q.fifo"}}
}

// FuzzPollerInput: any scheduler input. {"task":"poll"}, {}, null, an empty
// input and a scheduled-event envelope run a poll; anything else is refused
// with an error naming the poller (a clear failure of the schedule, not a
// silent run); nothing panics.
func FuzzPollerInput(f *testing.F) {
	for _, s := range []string{
		`{"task":"poll"}`, `{}`, `null`, ``, ` `, `{"task":null}`, `{"task":""}`,
		`{"version":"0","id":"x","detail-type":"Scheduled Event","source":"aws.events","account":"1","time":"2026-03-01T10:00:00Z","region":"us-east-1","resources":["arn:aws:events:us-east-1:1:rule/r"],"detail":{}}`,
		`{"task":"POLL"}`, `{"task":"export"}`, `{"Task":"poll"}`, `{"task":"poll","task":"sweep"}`, `{"task":1}`, `{"task":["poll"]}`,
		`"poll"`, `[]`, `[{"task":"poll"}]`, `1`, `true`, `{"task":"poll"} trailing`, `{"task":"poll\u0000"}`, `{`, "\xff",
		strings.Repeat(`{"a":`, 10001) + `1` + strings.Repeat(`}`, 10001),
	} {
		f.Add([]byte(s))
	}
	cfg := fuzzConfig(f)
	quiet := slog.New(slog.DiscardHandler)
	f.Fuzz(func(t *testing.T, raw []byte) {
		p, err := New(cfg, newMemS3(), nopFnO{}, NewBudget(60), nopSender{}, quiet)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		sum, err := p.Handle(ctx, json.RawMessage(raw))
		want := true // the input asks for a poll
		if tr := strings.TrimSpace(string(raw)); tr != "" && tr != "null" {
			var in Input
			want = json.Unmarshal(raw, &in) == nil && (in.Task == "" || in.Task == "poll")
		}
		if (err == nil) != want {
			t.Fatalf("Handle(%q) = %v, want a run: %v", raw, err, want)
		}
		if err != nil {
			if !strings.HasPrefix(err.Error(), "poller: ") {
				t.Fatalf("error does not name the poller: %v", err)
			}
			return
		}
		if sum.Errors != 0 || sum.Due != 0 {
			t.Fatalf("a run over an empty bucket: %+v", sum)
		}
	})
}

// FuzzPollerConfig: the poller's variables. What is accepted can be used:
// a run takes on at least one record, and every back-off is positive.
func FuzzPollerConfig(f *testing.F) {
	for _, s := range [][4]string{
		{"", "", "", ""}, {"1000", "15m", "24h", "1m"}, {"1", "1ns", "1ns", "1ns"}, {"0", "", "", ""}, {"-1", "", "", ""},
		{"9223372036854775807", "", "", ""}, {"153722867280912930", "", "", ""}, {"", "", "", "2562047h"}, {"", "", "", "1000000h"},
		{"", "2562047h", "2562047h", ""}, {"1e3", "15", "-1h", "0s"}, {" 10 ", " 1m ", "", ""},
	} {
		f.Add(s[0], s[1], s[2], s[3])
	}
	f.Fuzz(func(t *testing.T, budget, sweepAfter, stuckAfter, interval string) {
		env := map[string]string{"BUCKET": "b", "IMPORT_QUEUE_URL": "https://sqs/q.fifo",
			"ROUTES":                 `[{"route":"customers","activityId":"5d3c1e0a-7b64-4e7a-9b2f-8f6b3a521c0d","entity":"E"}]`,
			"POLL_BUDGET_PER_MINUTE": budget, "SWEEP_AFTER": sweepAfter, "STUCK_AFTER": stuckAfter, "POLL_INTERVAL": interval}
		c, err := ConfigFromEnv(func(k string) string { return env[k] })
		if err != nil {
			if !strings.Contains(err.Error(), "config: ") {
				t.Fatalf("error does not say config: %v", err)
			}
			return
		}
		if c.BudgetPerMinute < 1 || c.SweepAfter <= 0 || c.StuckAfter <= 0 || c.Interval <= 0 || c.SweepEvery <= 0 {
			t.Fatalf("accepted %+v", c)
		}
		p := &Poller{cfg: c}
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
		defer cancel()
		// perRun once overflowed for a budget near MaxInt64/16 (a run then
		// took on no record, for ever); it is computed in float64 now.
		if n := p.perRun(ctx); n < 1 {
			t.Fatalf("POLL_BUDGET_PER_MINUTE %q: a run takes on %d records", budget, n)
		}
		for _, age := range []time.Duration{0, time.Hour, 1000 * time.Hour, 1<<63 - 1} {
			for _, stuck := range []bool{false, true} {
				// 60*unit once overflowed for POLL_INTERVAL over ~4.8 years,
				// giving a negative delay (due again at once, every run);
				// the multiples saturate now.
				if d := NextDelay(age, stuck, c.Interval); d < c.Interval {
					t.Fatalf("NextDelay(%s, %v, %s) = %s, shorter than the unit", age, stuck, c.Interval, d)
				}
			}
		}
		// Any 60 s hold at most burst + rate × 60 s requests: a whole number
		// no greater than the budget (a budget of 1 allows 1.5), and some.
		if limit, burst := BudgetRate(c.BudgetPerMinute); limit <= 0 || burst < 1 ||
			float64(burst)+float64(limit)*60 > float64(c.BudgetPerMinute)*(1+1e-12)+0.5 {
			t.Fatalf("BudgetRate(%d) = %v, %d", c.BudgetPerMinute, limit, burst)
		}
	})
}

// FuzzSweepState: any _state/sweep.json. A document that says the last
// sweep was less than SweepEvery ago skips the sweep; anything else (not
// JSON, null, a time in the future, a date far back) sweeps and rewrites the
// document. A damaged state document never stops the sweep for good.
func FuzzSweepState(f *testing.F) {
	for _, s := range []string{
		`{"lastSweep":"2026-03-01T09:58:00Z"}`, `{"lastSweep":"2026-03-01T09:00:00Z"}`, `{"lastSweep":"2026-03-01T10:00:00Z"}`,
		`{"lastSweep":"2999-01-01T00:00:00Z"}`, `{"lastSweep":"0001-01-01T00:00:00Z"}`, `{"lastSweep":"2026-03-01T10:58:00+01:00"}`,
		`{"lastSweep":null}`, `{"lastSweep":1}`, `{}`, `null`, `[]`, ``, `garbage`, `{"lastSweep":"2026-03-01T09:58:00Z"} trailing`,
	} {
		f.Add([]byte(s))
	}
	cfg := fuzzConfig(f)
	now := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	cfg.Now = func() time.Time { return now }
	quiet := slog.New(slog.DiscardHandler)
	f.Fuzz(func(t *testing.T, doc []byte) {
		s3c := newMemS3()
		key := cfg.Layout.SweepStateKey()
		s3c.Put("b", key, doc, "", "")
		p, err := New(cfg, s3c, nopFnO{}, NewBudget(60), nopSender{}, quiet)
		if err != nil {
			t.Fatal(err)
		}
		sum := p.Run(context.Background())
		if sum.Errors != 0 {
			t.Fatalf("errors: %+v", sum)
		}
		var st sweepState
		skip := json.NewDecoder(strings.NewReader(string(doc))).Decode(&st) == nil &&
			now.Sub(st.LastSweep) < p.cfg.SweepEvery && !st.LastSweep.After(now)
		o, _ := s3c.Get("b", key)
		if skip {
			if string(o.Body) != string(doc) {
				t.Fatalf("sweep ran although %q says it is not due", doc)
			}
			return
		}
		var after sweepState
		if err := json.Unmarshal(o.Body, &after); err != nil || !after.LastSweep.Equal(now) {
			t.Fatalf("state %q: the sweep did not run and record itself (%s, %v)", doc, o.Body, err)
		}
	})
}
