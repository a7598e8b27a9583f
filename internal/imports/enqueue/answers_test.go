package enqueue_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/fno-bridge/s3-fno/internal/imports/enqueue"
	"github.com/fno-bridge/s3-fno/internal/imports/filing"
	"github.com/fno-bridge/s3-fno/internal/local/mototest"
	"github.com/fno-bridge/s3-fno/internal/local/pipelinetest"
	"github.com/fno-bridge/s3-fno/internal/shared/fnoenv"
	"github.com/fno-bridge/s3-fno/internal/shared/layout"
	"github.com/fno-bridge/s3-fno/pkg/d365/d365test"
)

// TestFrontDoorAnswerIsOutcomeUnknown: a 200 answer to enqueue that is not
// an enqueue answer (a sign-in page of a front door, with a request ID that
// looks like a message ID) is not taken for F&O's message ID: the file is
// filed under failed/ as EnqueueOutcomeUnknown, with what came back, and is
// never followed in the ledger (so never reported stuck).
func TestFrontDoorAnswerIsOutcomeUnknown(t *testing.T) {
	f := newFixture(t, pipelinetest.FIFO{}, d365test.Options{})
	f.emu.Inject(d365test.Fault{Endpoint: "enqueue", Status: 200, EnqueueAnswer: d365test.AnswerSessionExpired, Count: 1})
	fm := f.drop(t, "inbound/customers/front-door.csv", []byte("a;b\n"))
	if resp, err := f.h.Handle(context.Background(), event(fm)); err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("Handle = %+v, %v", resp, err)
	}
	key := "failed/customers/" + time.Now().UTC().Format("2006/01/02") + "/front-door.csv"
	raw, ok := pipelinetest.Get(t, f.s3, f.bucket, key+layout.ResultSuffix)
	if !ok {
		t.Fatalf("no result document; bucket holds %v", pipelinetest.Keys(t, f.s3, f.bucket, ""))
	}
	var res filing.Result
	if err := json.Unmarshal(raw, &res); err != nil {
		t.Fatal(err)
	}
	notes := strings.Join(res.Notes, " ")
	if res.Status != enqueue.OutcomeUnknown || res.MessageID != "" || strings.Contains(notes, "no answer came back") ||
		!strings.Contains(notes, "an answer came back") {
		t.Fatalf("result = %+v", res)
	}
	var answer struct {
		Status      int    `json:"status"`
		ContentType string `json:"contentType"`
		FirstBytes  string `json:"firstBytes"`
	}
	if err := json.Unmarshal(res.Answer, &answer); err != nil || answer.Status != 200 || !strings.Contains(answer.ContentType, "html") ||
		!strings.Contains(answer.FirstBytes, "Session") {
		t.Fatalf("answer kept = %s (%v)", res.Answer, err)
	}
	if left := pipelinetest.Keys(t, f.s3, f.bucket, "_state/"); len(left) != 0 {
		t.Fatalf("state left: %v (the file must not be followed as if F&O had it)", left)
	}
}

// TestRefusalShowsTheSpecificCause: F&O's error bodies carry a generic
// message and the cause in innererror; the reason document shows the cause
// first. An activity F&O does not know is the case users meet.
func TestRefusalShowsTheSpecificCause(t *testing.T) {
	f := newFixture(t, pipelinetest.FIFO{}, d365test.Options{})
	fm := f.drop(t, "inbound/nowhere/unknown-job.csv", []byte("a\n"))
	if resp, err := f.h.Handle(context.Background(), event(fm)); err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("Handle = %+v, %v", resp, err)
	}
	key := "rejected/nowhere/" + time.Now().UTC().Format("2006/01/02") + "/unknown-job.csv" + layout.ReasonSuffix
	raw, ok := pipelinetest.Get(t, f.s3, f.bucket, key)
	if !ok {
		t.Fatalf("no reason document; bucket holds %v", pipelinetest.Keys(t, f.s3, f.bucket, ""))
	}
	var reason filing.Reason
	if err := json.Unmarshal(raw, &reason); err != nil {
		t.Fatal(err)
	}
	generic := "An error has occurred."
	i, j := strings.Index(reason.Detail, pipelinetest.ActMissing), strings.Index(reason.Detail, generic)
	if reason.Reason != "fno-rejected" || i < 0 || j >= 0 && j < i {
		t.Fatalf("detail %q: want the activity named before %q", reason.Detail, generic)
	}
	var answer map[string]any
	if err := json.Unmarshal(reason.Answer, &answer); err != nil || answer["status"] != float64(404) ||
		!strings.Contains(answer["message"].(string), pipelinetest.ActMissing) {
		t.Fatalf("answer = %s", reason.Answer)
	}
}

// TestRefusedSecretKeepsFilesAndRecovers: when Entra ID refuses the client
// secret, no file is lost or filed: the batch goes back to SQS, the failure
// is logged at ERROR with the AADSTS code and what to do, and no secret is
// logged. Once the secret in Secrets Manager is right again, the next
// delivery goes through without a redeploy (the secret is read again).
func TestRefusedSecretKeepsFilesAndRecovers(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, pipelinetest.FIFO{}, d365test.Options{})
	old := f.emu.ClientSecret()
	f.emu.ExpireClientSecret()
	sm := secretsmanager.NewFromConfig(mototest.Config(t))
	sec, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(mototest.Name("fno")), SecretString: aws.String(old)})
	if err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, f.emu.CertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	settings := fnoenv.Settings{BaseURL: f.emu.URL(), TenantID: f.emu.TenantID(), ClientID: f.emu.ClientID(), SecretARN: aws.ToString(sec.ARN),
		AuthorityHost: strings.TrimSuffix(f.emu.AuthorityURL(), "/"+f.emu.TenantID()), CABundle: ca}
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	clock := pipelinetest.NewClock(time.Now())
	fno, err := settings.NewClient(sm, fnoenv.Options{Logger: log, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	h, err := enqueue.New(f.cfg, f.s3, fno, f.sqs, log)
	if err != nil {
		t.Fatal(err)
	}
	fm := f.drop(t, "inbound/customers/while-expired.csv", []byte("a;b\n"))
	resp, err := h.Handle(ctx, event(fm))
	if err != nil || len(resp.BatchItemFailures) != 1 {
		t.Fatalf("Handle = %+v, %v; want the record back for redelivery", resp, err)
	}
	if _, ok := pipelinetest.Get(t, f.s3, f.bucket, fm.Key); !ok {
		t.Fatal("the file left inbound/")
	}
	var refused map[string]any
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var l map[string]any
		if json.Unmarshal([]byte(line), &l) == nil && l["level"] == "ERROR" && l["aadsts"] == "AADSTS7000222" {
			refused = l
		}
	}
	if refused == nil || !strings.Contains(refused["fix"].(string), "Secrets Manager") {
		t.Fatalf("no ERROR line with the code and the fix in:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), old) {
		t.Fatal("the client secret was logged")
	}
	// Someone renews the secret and stores it; the redelivery (SQS's
	// visibility timeout later) goes through on the same client.
	f.emu.SetClientSecret("renewed-" + old)
	if _, err := sm.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: sec.ARN, SecretString: aws.String(f.emu.ClientSecret())}); err != nil {
		t.Fatal(err)
	}
	clock.Set(clock.Now().Add(2 * time.Minute))
	if resp, err := h.Handle(ctx, event(fm)); err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("redelivery after the fix = %+v, %v\n%s", resp, err, logs.String())
	}
	if n := len(f.emu.Messages()); n != 1 {
		t.Fatalf("%d messages in F&O after the secret was fixed, want 1", n)
	}
	if strings.Contains(logs.String(), old) {
		t.Fatal("a client secret was logged")
	}
}
