package fnoenv

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/fno-bridge/s3-fno/internal/local/mototest"
	"github.com/fno-bridge/s3-fno/pkg/d365"
	"github.com/fno-bridge/s3-fno/pkg/d365/d365test"
)

const someMessage = "6f2a1c3e-0b5d-4f6a-9e2b-7c8d9e0f1a2b"

// fakeClock is a settable clock for the re-read timings.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Advance(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.t = c.t.Add(d) }

// countingSM counts Secrets Manager reads.
type countingSM struct {
	SecretGetter
	n atomic.Int32
}

func (c *countingSM) GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, opts ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error) {
	c.n.Add(1)
	return c.SecretGetter.GetSecretValue(ctx, in, opts...)
}

// emulatorSettings are the settings of a client of e whose secret is the
// Secrets Manager secret arn.
func emulatorSettings(t *testing.T, e *d365test.Emulator, arn string) Settings {
	t.Helper()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, e.CertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	return Settings{BaseURL: e.URL(), TenantID: e.TenantID(), ClientID: e.ClientID(), SecretARN: arn,
		AuthorityHost: strings.TrimSuffix(e.AuthorityURL(), "/"+e.TenantID()), CABundle: ca}
}

// When Entra ID refuses the secret (wrong, or expired), the client says so
// with an AuthError naming the code, the fix and the Secrets Manager
// secret; it reads the secret again at once, at most once a minute, and
// rebuilds the credential only when the secret changed. Once the secret in
// Secrets Manager is right, the next call goes through on the same client,
// and nothing logged holds a secret or a token.
func TestRefusedSecretIsReadAgain(t *testing.T) {
	for _, tt := range []struct {
		name  string
		code  string
		spoil func(e *d365test.Emulator) (stored string)
	}{
		{"wrong secret", "AADSTS7000215", func(e *d365test.Emulator) string { return "not-the-secret-" + e.ClientSecret() }},
		{"expired secret", "AADSTS7000222", func(e *d365test.Emulator) string { e.ExpireClientSecret(); return e.ClientSecret() }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			e := d365test.NewT(t, d365test.Options{})
			stored := tt.spoil(e)
			sm := secretsmanager.NewFromConfig(mototest.Config(t))
			sec, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(mototest.Name("fno")),
				SecretString: aws.String(`{"clientSecret":"` + stored + `"}`)})
			if err != nil {
				t.Fatal(err)
			}
			var logs bytes.Buffer
			log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			counting := &countingSM{SecretGetter: sm}
			c, lt, err := emulatorSettings(t, e, *sec.ARN).newClient(counting, Options{Logger: log,
				Retry: d365.RetryPolicy{InitialInterval: time.Millisecond, MaxInterval: time.Millisecond}})
			if err != nil {
				t.Fatal(err)
			}
			clock := &fakeClock{t: time.Now()}
			lt.now = clock.Now
			call := func() error { _, err := c.GetMessageStatus(ctx, someMessage); return err }
			state := func() (reads, builds int) {
				lt.mu.Lock()
				defer lt.mu.Unlock()
				return int(counting.n.Load()), lt.builds
			}

			// Refused: the typed error, with the code and the fix.
			err = call()
			var ae *d365.AuthError
			if !errors.As(err, &ae) || ae.Code != tt.code || !ae.InvalidClient() {
				t.Fatalf("err = %v, want an AuthError %s", err, tt.code)
			}
			if !strings.Contains(err.Error(), ae.Fix()) || !strings.Contains(ae.Fix(), *sec.ARN) {
				t.Fatalf("Error() = %q; want the fix naming the secret %s", err.Error(), *sec.ARN)
			}
			if r, b := state(); r != 1 || b != 1 {
				t.Fatalf("reads %d, builds %d; want 1 and 1 (just read: not read again)", r, b)
			}

			// A minute on, still refused: read again, unchanged, so the
			// credential (and MSAL's client) is kept.
			clock.Advance(rereadEvery)
			if err := call(); !errors.As(err, &ae) {
				t.Fatalf("err = %v", err)
			}
			if r, b := state(); r != 2 || b != 1 {
				t.Fatalf("reads %d, builds %d; want 2 and 1", r, b)
			}
			// Within the minute: not read again.
			clock.Advance(rereadEvery / 2)
			if err := call(); !errors.As(err, &ae) {
				t.Fatalf("err = %v", err)
			}
			if r, _ := state(); r != 2 {
				t.Fatalf("reads %d; want no read within a minute of the last", r)
			}

			// The operator renews the secret in Entra ID and Secrets
			// Manager: the next call (past the minute) goes through.
			e.SetClientSecret("renewed-secret-value")
			if _, err := sm.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: sec.ARN,
				SecretString: aws.String(`{"clientSecret":"renewed-secret-value"}`)}); err != nil {
				t.Fatal(err)
			}
			clock.Advance(rereadEvery)
			if err := call(); err != nil {
				t.Fatalf("after the secret was renewed: %v", err)
			}
			if r, b := state(); r != 3 || b != 2 {
				t.Fatalf("reads %d, builds %d; want 3 and 2", r, b)
			}
			tokens := e.TokenRequests()
			if err := call(); err != nil || e.TokenRequests() != tokens {
				t.Fatalf("err %v, token requests %d -> %d: MSAL's cache should answer", err, tokens, e.TokenRequests())
			}
			// Past the TTL the secret is read again; unchanged, nothing is
			// rebuilt and MSAL's cached token still serves.
			clock.Advance(secretTTL)
			if err := call(); err != nil || e.TokenRequests() != tokens {
				t.Fatalf("err %v, token requests %d -> %d", err, tokens, e.TokenRequests())
			}
			if r, b := state(); r != 4 || b != 2 {
				t.Fatalf("reads %d, builds %d; want 4 and 2", r, b)
			}

			all := logs.String()
			if !strings.Contains(all, tt.code) {
				t.Fatalf("the log does not name %s:\n%s", tt.code, all)
			}
			for _, secret := range append([]string{stored, "renewed-secret-value"}, e.IssuedTokens()...) {
				if strings.Contains(all, secret) {
					t.Fatalf("the log holds a secret or token %q:\n%s", secret, all)
				}
			}
		})
	}
}

// blockingSM answers only once released, counting reads.
type blockingSM struct {
	secret  string
	release chan struct{}
	n       atomic.Int32
}

func (b *blockingSM) GetSecretValue(ctx context.Context, _ *secretsmanager.GetSecretValueInput, _ ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error) {
	b.n.Add(1)
	select {
	case <-b.release:
		return &secretsmanager.GetSecretValueOutput{SecretString: aws.String(b.secret)}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// While Secrets Manager is slow, callers share one read, and a caller
// whose context ends stops waiting at once (no lock is held over the read).
func TestSecretReadIsSharedAndNotLocked(t *testing.T) {
	e := d365test.NewT(t, d365test.Options{})
	sm := &blockingSM{secret: e.ClientSecret(), release: make(chan struct{})}
	c, _, err := emulatorSettings(t, e, "arn:aws:secretsmanager:eu-west-1:000000000000:secret:fno").newClient(sm, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 5)
	for range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.GetMessageStatus(context.Background(), someMessage)
			errs <- err
		}()
	}
	for sm.n.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	waited := make(chan error, 1)
	go func() { _, err := c.GetMessageStatus(ctx, someMessage); waited <- err }()
	select {
	case err := <-waited:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("a caller with a deadline got %v", err)
		}
	case <-time.After(5 * time.Second):
		close(sm.release)
		t.Fatal("a caller with a deadline was held until Secrets Manager answered")
	}
	close(sm.release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := sm.n.Load(); n != 1 {
		t.Fatalf("%d Secrets Manager reads, want 1 shared by every caller", n)
	}
}
