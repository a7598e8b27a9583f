package fnoenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/fno-bridge/s3-fno/internal/local/mototest"
	"github.com/fno-bridge/s3-fno/internal/local/pipelinetest"
	"github.com/fno-bridge/s3-fno/pkg/d365"
	"github.com/fno-bridge/s3-fno/pkg/d365/d365test"
)

const (
	rotationActivity = "3b7e1f2a-9c4d-4e8b-a6f5-2d1c0b9a8e7f"
	rotationEntity   = "Customer groups"
	tokenLifetime    = time.Hour
)

// rotationWorld is one emulator (Entra ID and F&O), one Secrets Manager
// secret in moto and some execution environments, each with its own client
// (its own lazyTokens and MSAL cache) as Lambda gives each its own.
//
// Time: the emulator's fake clock is the clock of every environment's
// re-reads (Options.Now) and of token expiry (the emulator refuses a token
// TokenLifetime after it issued it). MSAL's cache cannot be put on a fake
// clock (it reads time.Now), so with real time standing nearly still it
// holds every token for the whole test: a token's end on the fake clock
// reaches the client as F&O's 401, as a revoked one does.
type rotationWorld struct {
	t       *testing.T
	e       *d365test.Emulator
	sm      *secretsmanager.Client
	arn     string
	logs    *pipelinetest.SyncBuffer
	secrets []string // every secret value used, to check the log
	envs    []*execEnv
	n       int // rotations so far
}

// execEnv is one execution environment.
type execEnv struct {
	c        *d365.Client
	lt       *lazyTokens
	reads    *countingSM
	ids      []string // messages it enqueued
	retries  map[int]int
	tokenReq map[int]int // token requests it made, by minute
}

func newRotationWorld(t *testing.T, envs int) *rotationWorld {
	t.Helper()
	ctx := context.Background()
	first := "secret-0-" + mototest.Name("v")
	e := d365test.NewT(t, d365test.Options{ClientSecret: first, TokenLifetime: tokenLifetime, RevokeTokensWithSecret: true})
	e.AddActivity(rotationActivity, d365test.Activity{Name: "Import customer groups"})
	sm := secretsmanager.NewFromConfig(mototest.Config(t))
	sec, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(mototest.Name("fno")),
		SecretString: aws.String(`{"clientSecret":"` + first + `"}`)})
	if err != nil {
		t.Fatal(err)
	}
	w := &rotationWorld{t: t, e: e, sm: sm, arn: *sec.ARN, logs: &pipelinetest.SyncBuffer{}, secrets: []string{first}}
	log := slog.New(slog.NewJSONHandler(w.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	for range envs {
		reads := &countingSM{SecretGetter: sm}
		c, lt, err := emulatorSettings(t, e, w.arn).newClient(reads, Options{Logger: log, Now: e.Now,
			Retry: d365.RetryPolicy{InitialInterval: time.Millisecond, MaxInterval: time.Millisecond}})
		if err != nil {
			t.Fatal(err)
		}
		w.envs = append(w.envs, &execEnv{c: c, lt: lt, reads: reads, retries: map[int]int{}, tokenReq: map[int]int{}})
	}
	return w
}

// newSecret is the next secret value.
func (w *rotationWorld) newSecret() string {
	w.n++
	s := fmt.Sprintf("secret-%d-%s", w.n, mototest.Name("v"))
	w.secrets = append(w.secrets, s)
	return s
}

// store puts secret in Secrets Manager.
func (w *rotationWorld) store(secret string) {
	w.t.Helper()
	if _, err := w.sm.PutSecretValue(context.Background(), &secretsmanager.PutSecretValueInput{SecretId: &w.arn,
		SecretString: aws.String(`{"clientSecret":"` + secret + `"}`)}); err != nil {
		w.t.Fatal(err)
	}
}

// rotateAtOnce renews the secret and deletes the old one in Entra ID and
// stores the new one, all at once: F&O refuses every token of the old
// secret from now on (RevokeTokensWithSecret), though the environments'
// caches still hold one.
func (w *rotationWorld) rotateAtOnce() {
	s := w.newSecret()
	w.e.SetClientSecret(s)
	w.store(s)
}

// work is one environment's work in one minute: a file is enqueued and its
// status and that of the file before are asked for, all through the real
// client. When statusFirst, the status of the file before is asked first.
// An enqueue F&O answers with 401 is sent again once, as SQS would deliver
// it again; anything else that fails fails the test.
func (w *rotationWorld) work(i, minute int, statusFirst bool) {
	w.t.Helper()
	ctx := context.Background()
	env := w.envs[i]
	before := w.e.TokenRequests()
	status := func(id string) {
		w.t.Helper()
		if _, err := env.c.GetMessageStatus(ctx, id); err != nil {
			w.t.Fatalf("env %d, minute %d: GetMessageStatus: %v", i, minute, err)
		}
	}
	prev := someMessage
	if len(env.ids) > 0 {
		prev = env.ids[len(env.ids)-1]
	}
	if statusFirst {
		status(prev)
	}
	body := []byte(fmt.Sprintf("CUSTGROUPID,NAME\nE%dM%03d,env %d minute %d\n", i, minute, i, minute))
	enqueue := func() (string, error) {
		return env.c.Enqueue(ctx, d365.EnqueueRequest{ActivityID: rotationActivity, Entity: rotationEntity,
			ExternalID: fmt.Sprintf("inbound/env%d/m%03d.csv", i, minute), Body: bytes.NewReader(body), Size: int64(len(body)),
			Reopen: func(context.Context) (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }})
	}
	id, err := enqueue()
	var fe *d365.Error
	if errors.As(err, &fe) && fe.StatusCode == http.StatusUnauthorized {
		env.retries[minute]++
		id, err = enqueue()
	}
	if err != nil {
		w.t.Fatalf("env %d, minute %d: enqueue: %v", i, minute, err)
	}
	env.ids = append(env.ids, id)
	status(id)
	if !statusFirst {
		status(prev)
	}
	if n := w.e.TokenRequests() - before; n > 0 {
		env.tokenReq[minute] = n
	}
}

// run runs every environment's work once a simulated minute for the given
// minutes, calling at(minute) first.
func (w *rotationWorld) run(minutes int, at func(minute int)) {
	for m := range minutes {
		at(m)
		for i := range w.envs {
			w.work(i, m, m%2 == 0)
		}
		w.e.Advance(time.Minute)
	}
}

// check checks what every run must hold: each file reached F&O exactly
// once, and the log holds neither a secret nor a token.
func (w *rotationWorld) check() {
	w.t.Helper()
	sent := 0
	for _, env := range w.envs {
		sent += len(env.ids)
	}
	seen := map[string]int{}
	for _, m := range w.e.Messages() {
		seen[m.ExternalID]++
	}
	if len(seen) != sent || len(w.e.Messages()) != sent {
		w.t.Fatalf("F&O holds %d messages of %d files, %d sent", len(w.e.Messages()), len(seen), sent)
	}
	all := w.logs.String()
	for _, s := range append(append([]string(nil), w.secrets...), w.e.IssuedTokens()...) {
		if strings.Contains(all, s) {
			w.t.Fatalf("the log holds a secret or token %q", s)
		}
	}
}

// state is an environment's counts.
func (env *execEnv) state() (reads, builds, drops int) {
	env.lt.mu.Lock()
	defer env.lt.mu.Unlock()
	return int(env.reads.n.Load()), env.lt.builds, env.lt.drops
}

// Two simulated hours of steady work in two execution environments, with
// no rotation: each requests one token per token lifetime (at minute 0,
// and at minute 60 when the first one ends), reads the secret every 15
// minutes and keeps its MSAL client across those reads; no call fails.
func TestTokensOverTwoHours(t *testing.T) {
	w := newRotationWorld(t, 2)
	const minutes = 120
	w.run(minutes, func(int) {})
	w.check()
	want := map[int]int{0: 1, 60: 1}
	for i, env := range w.envs {
		if fmt.Sprint(env.tokenReq) != fmt.Sprint(want) {
			t.Errorf("env %d: token requests by minute %v, want %v (one per %s lifetime)", i, env.tokenReq, want, tokenLifetime)
		}
		if n := len(env.tokenReq); n != minutes/int(tokenLifetime/time.Minute) {
			t.Errorf("env %d: %d token requests in %d minutes", i, n, minutes)
		}
		if len(env.retries) != 0 {
			t.Errorf("env %d: retries %v, want none", i, env.retries)
		}
		// Reads at 0, 15, ..., 105; the source built once, and rebuilt
		// from the same secret once, to drop the token F&O refused at 60.
		if r, b, d := env.state(); r != minutes/int(secretTTL/time.Minute) || b != 1 || d != 1 {
			t.Errorf("env %d: reads %d, builds %d, drops %d; want 8, 1, 1", i, r, b, d)
		}
	}
}

// Rotations while files flow, in two execution environments over two
// simulated hours: each rotation costs each environment exactly one token
// request, and nothing fails.
//
//   - Minute 10: the secret is renewed in Entra ID, the old one deleted
//     (its tokens refused) and the new one stored, at once. The first call
//     is a status request: F&O's 401 makes the environment read the
//     secret again (the last read is a minute old) and send the request
//     once more with a token of the new secret.
//   - Minute 45: the same, but the first call is an enqueue: it meets the
//     401 and the client sends it again at once, its body read again from
//     its source (F&O did not act on a request it refused).
//   - Minute 78: a second secret is added in Entra ID and stored; the old
//     one is deleted at 92. The environments pick the new one up on their
//     15-minute re-read (at 90: reads at 45, 60, 75, 90), before the old
//     one goes: the old token is never refused.
//   - Minute 110: like minute 10.
func TestSecretRotationWhileFilesFlow(t *testing.T) {
	w := newRotationWorld(t, 2)
	var overlap string
	w.run(120, func(m int) {
		switch m {
		case 10, 45, 110:
			w.rotateAtOnce()
		case 78:
			overlap = w.newSecret()
			w.e.AddClientSecret(overlap)
			w.store(overlap)
		case 92:
			w.e.SetClientSecret(overlap)
		}
	})
	w.check()
	wantTokens := map[int]int{0: 1, 10: 1, 45: 1, 90: 1, 110: 1}
	wantRetries := map[int]int{} // the client's own second send absorbs the 401 at 45
	for i, env := range w.envs {
		if fmt.Sprint(env.tokenReq) != fmt.Sprint(wantTokens) {
			t.Errorf("env %d: token requests by minute %v, want %v", i, env.tokenReq, wantTokens)
		}
		if fmt.Sprint(env.retries) != fmt.Sprint(wantRetries) {
			t.Errorf("env %d: enqueue retries by minute %v, want %v", i, env.retries, wantRetries)
		}
		// Reads at 0, 10, 25, 40, 45, 60, 75, 90, 105, 110: every 15
		// minutes, and at once on F&O's refusals; a source built per
		// secret, none rebuilt from the same secret.
		if r, b, d := env.state(); r != 10 || b != 5 || d != 0 {
			t.Errorf("env %d: reads %d, builds %d, drops %d; want 10, 5, 0", i, r, b, d)
		}
	}
	if !strings.Contains(w.logs.String(), "F&O refused the access token (401)") {
		t.Errorf("the refusals are not logged:\n%s", w.logs.String())
	}
}

// Many concurrent calls meet the refusal of the same revoked token: they
// share one secret read and one token request, and all go through.
func TestConcurrentCallsShareTheRefusal(t *testing.T) {
	w := newRotationWorld(t, 1)
	env := w.envs[0]
	ctx := context.Background()
	if _, err := env.c.GetMessageStatus(ctx, someMessage); err != nil {
		t.Fatal(err)
	}
	w.e.Advance(2 * time.Minute)
	w.rotateAtOnce()
	reads, tokens := env.reads.n.Load(), w.e.TokenRequests()
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := env.c.GetMessageStatus(ctx, someMessage)
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("a call failed: %v", err)
		}
	}
	if n := env.reads.n.Load() - reads; n != 1 {
		t.Errorf("%d secret reads, want 1", n)
	}
	if n := w.e.TokenRequests() - tokens; n != 1 {
		t.Errorf("%d token requests, want 1", n)
	}
	w.check()
}

// F&O refusing every token (the app was removed from F&O, say) is acted
// on at most once a minute: one secret read and one new token, not one per
// call.
func TestRefusalsAreActedOnOnceAMinute(t *testing.T) {
	w := newRotationWorld(t, 1)
	env := w.envs[0]
	ctx := context.Background()
	if _, err := env.c.GetMessageStatus(ctx, someMessage); err != nil {
		t.Fatal(err)
	}
	w.e.AddApp(d365test.App{ClientID: w.e.ClientID(), ClientSecret: w.e.ClientSecret(), NotInFO: true})
	w.e.Advance(2 * time.Minute)
	reads, tokens := env.reads.n.Load(), w.e.TokenRequests()
	for range 5 {
		_, err := env.c.GetMessageStatus(ctx, someMessage)
		var fe *d365.Error
		if !errors.As(err, &fe) || fe.StatusCode != http.StatusUnauthorized {
			t.Fatalf("err = %v, want F&O's 401", err)
		}
	}
	if r, n := env.reads.n.Load()-reads, w.e.TokenRequests()-tokens; r != 1 || n != 1 {
		t.Fatalf("%d reads, %d token requests; want 1 and 1", r, n)
	}
	w.e.Advance(time.Minute)
	if _, err := env.c.GetMessageStatus(ctx, someMessage); err == nil {
		t.Fatal("want F&O's 401")
	}
	if r, n := env.reads.n.Load()-reads, w.e.TokenRequests()-tokens; r != 2 || n != 2 {
		t.Fatalf("a minute on: %d reads, %d token requests; want 2 and 2", r, n)
	}
	w.check()
}
