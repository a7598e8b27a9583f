package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fno-bridge/s3-fno/pkg/d365"
	"github.com/fno-bridge/s3-fno/pkg/d365/d365test"
)

func TestParseActivity(t *testing.T) {
	t.Parallel()
	const id = "6c4e8f53-2d0a-4b7e-9f13-8a5c2b7d9e01"
	for _, tc := range []struct {
		name, in string
		want     d365test.Activity
		bad      bool
	}{
		{"bare", id, d365test.Activity{}, false},
		{"braces", "{" + strings.ToUpper(id) + "}", d365test.Activity{}, false},
		{"file in order", id + ",file,inorder", d365test.Activity{Kind: d365test.File, InOrder: true}, false},
		{"package named", id + ",package,name=Vendors export", d365test.Activity{Kind: d365test.Package, Name: "Vendors export"}, false},
		{"unknown option", id + ",fast", d365test.Activity{}, true},
		{"not a GUID", "customers", d365test.Activity{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseActivity(tc.in)
			if (err != nil) != tc.bad {
				t.Fatalf("err = %v, want bad=%v", err, tc.bad)
			}
			if !tc.bad && (got.a.Kind != tc.want.Kind || got.a.InOrder != tc.want.InOrder || got.a.Name != tc.want.Name) {
				t.Errorf("got %+v, want %+v", got.a, tc.want)
			}
		})
	}
}

func TestParseFlagsRejects(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"-activity", "x"},
		{"-export", "nope"},
		{"-tick", "-1s"},
		{"-enqueue-answer", "xml"},
		{"extra"},
	} {
		if _, err := parseFlags(args, io.Discard); err == nil {
			t.Errorf("%q accepted", args)
		}
	}
	if _, err := parseFlags([]string{"-addr", "0.0.0.0:0"}, io.Discard); err != nil {
		t.Fatalf("parse: %v", err) // refused at start, below
	}
	cfg, _ := parseFlags([]string{"-addr", "0.0.0.0:0"}, io.Discard)
	if err := run(context.Background(), cfg, io.Discard, nil); err == nil || !strings.Contains(err.Error(), "127.0.0.1") {
		t.Errorf("run on 0.0.0.0: %v, want a refusal", err)
	}
}

// -enqueue-answer sets the shape of every enqueue answer.
func TestEnqueueAnswerFlag(t *testing.T) {
	t.Parallel()
	cfg, err := parseFlags(nil, io.Discard)
	if err != nil || cfg.opts.EnqueueAnswer != d365test.AnswerJSONString {
		t.Fatalf("default: %q, %v", cfg.opts.EnqueueAnswer, err)
	}
	for _, s := range d365test.AnswerShapes {
		cfg, err := parseFlags([]string{"-enqueue-answer", string(s)}, io.Discard)
		if err != nil || cfg.opts.EnqueueAnswer != s {
			t.Errorf("-enqueue-answer %s: %q, %v", s, cfg.opts.EnqueueAnswer, err)
		}
	}
	cfg, _ = parseFlags([]string{"-enqueue-answer", "session-expired", "-activity", "6c4e8f53-2d0a-4b7e-9f13-8a5c2b7d9e01"}, io.Discard)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	ready := make(chan *d365test.Emulator, 1)
	go func() { done <- run(ctx, cfg, io.Discard, func(e *d365test.Emulator) { ready <- e }) }()
	var e *d365test.Emulator
	select {
	case e = <-ready:
	case err := <-done:
		t.Fatalf("run: %v", err)
	}
	cred, _ := d365.SecretCredential(e.ClientSecret())
	au, _ := url.Parse(e.AuthorityURL())
	c, err := d365.New(d365.Config{BaseURL: e.URL(), TenantID: e.TenantID(), ClientID: e.ClientID(), Credential: cred,
		AuthorityHost: au.Scheme + "://" + au.Host, HTTPClient: e.HTTPClient()})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Enqueue(ctx, d365.EnqueueRequest{ActivityID: "6c4e8f53-2d0a-4b7e-9f13-8a5c2b7d9e01", Body: strings.NewReader("x"), Size: 1})
	var ua *d365.UnexpectedAnswerError
	if !errors.As(err, &ua) || !strings.Contains(ua.Snippet, "Session expired") {
		t.Fatalf("err = %v, want the front-door page as an unexpected answer", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestRun starts the command's emulator as an outside process would use it:
// through the printed settings and the CA file only.
func TestRun(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	const act, exp = "6c4e8f53-2d0a-4b7e-9f13-8a5c2b7d9e01", "d4c3b2a1-0f9e-4d8c-b7a6-958473625104"
	exportFile := filepath.Join(dir, "out.zip")
	os.WriteFile(exportFile, []byte("exported"), 0o644)
	caFile := filepath.Join(dir, "ca.pem")
	cfg, err := parseFlags([]string{"-addr", "127.0.0.1:0", "-activity", act + ",file,inorder",
		"-export", exp + "=" + exportFile, "-ca-out", caFile, "-tick", "5ms"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var out bytes.Buffer
	started := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- run(ctx, cfg, &out, func(*d365test.Emulator) { close(started) }) }()
	select {
	case <-started:
	case err := <-done:
		t.Fatalf("run: %v", err)
	}
	env := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(out.String()))
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), "=")
		env[k] = v
	}
	for _, k := range []string{"FNO_BASE_URL", "FNO_AUTHORITY_HOST", "FNO_TENANT_ID", "FNO_CLIENT_ID", "FNO_CLIENT_SECRET", "FNO_CA_BUNDLE"} {
		if env[k] == "" {
			t.Fatalf("%s not printed:\n%s", k, out.String())
		}
	}
	pemData, err := os.ReadFile(env["FNO_CA_BUNDLE"])
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemData) {
		t.Fatal("CA file holds no certificate")
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := hc.PostForm(env["FNO_AUTHORITY_HOST"]+"/"+env["FNO_TENANT_ID"]+"/oauth2/v2.0/token", url.Values{
		"grant_type": {"client_credentials"}, "client_id": {env["FNO_CLIENT_ID"]},
		"client_secret": {env["FNO_CLIENT_SECRET"]}, "scope": {env["FNO_BASE_URL"] + "/.default"}})
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	call := func(method, path, body string) (int, string) {
		req, _ := http.NewRequest(method, env["FNO_BASE_URL"]+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, id := call(http.MethodPost, "/api/connector/enqueue/"+act+"?entity=Customer%20groups", "a,b")
	if code != 200 {
		t.Fatalf("enqueue %d %s", code, id)
	}
	// The printed names and values are the ones the functions read: the
	// real client (MSAL against FNO_AUTHORITY_HOST) works from them alone.
	cred, err := d365.SecretCredential(env["FNO_CLIENT_SECRET"])
	if err != nil {
		t.Fatal(err)
	}
	fc, err := d365.New(d365.Config{BaseURL: env["FNO_BASE_URL"], TenantID: env["FNO_TENANT_ID"], ClientID: env["FNO_CLIENT_ID"],
		Credential: cred, AuthorityHost: env["FNO_AUTHORITY_HOST"], HTTPClient: hc})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fc.Enqueue(ctx, d365.EnqueueRequest{ActivityID: act, Entity: "Customer groups", Body: strings.NewReader("c,d"), Size: 3}); err != nil {
		t.Fatalf("enqueue with the client built from the printed settings: %v", err)
	}
	// The ticker processes the message by itself.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		_, body := call(http.MethodPost, "/data/DataManagementDefinitionGroups/Microsoft.Dynamics.DataEntities.GetMessageStatus", `{"messageId":`+id+`}`)
		if strings.Contains(body, `"value":"Processed"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("never processed: %s", body)
		}
	}
	if code, body := call(http.MethodGet, "/api/connector/dequeue/"+exp, ""); code != 200 || !strings.Contains(body, "CorrelationId") {
		t.Errorf("queued export: %d %s", code, body)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("run after cancel: %v", err)
	}
}

// TestOnPremisesAndParallelPackageImport: -on-premises prints the settings
// of an on-premises environment (AD FS authority, tenant "adfs",
// FNO_NAMESPACE), and the real client built from them alone imports
// packages; with -enhanced-parallel-package-import two data projects'
// imports run side by side and both succeed, without it the second fails.
func TestOnPremisesAndParallelPackageImport(t *testing.T) {
	t.Parallel()
	for _, parallel := range []bool{true, false} {
		args := []string{"-on-premises", "-tick", "0", "-ca-out", filepath.Join(t.TempDir(), "ca.pem")}
		if parallel {
			args = append(args, "-enhanced-parallel-package-import")
		}
		cfg, err := parseFlags(args, io.Discard)
		if err != nil || cfg.opts.EnhancedParallelPackageImport != parallel || !cfg.opts.OnPremises {
			t.Fatalf("%q: %+v, %v", args, cfg.opts, err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		var out bytes.Buffer
		ready := make(chan *d365test.Emulator, 1)
		done := make(chan error, 1)
		go func() { done <- run(ctx, cfg, &out, func(e *d365test.Emulator) { ready <- e }) }()
		var e *d365test.Emulator
		select {
		case e = <-ready:
		case err := <-done:
			t.Fatalf("run: %v", err)
		}
		env := map[string]string{}
		for _, line := range strings.Split(out.String(), "\n") {
			if k, v, ok := strings.Cut(line, "="); ok {
				env[k] = v
			}
		}
		if env["FNO_TENANT_ID"] != "adfs" || env["FNO_NAMESPACE"] != "AXSF" || !strings.HasSuffix(env["FNO_AUTHORITY_HOST"], "/adfs") {
			t.Fatalf("printed:\n%s", out.String())
		}
		cred, _ := d365.SecretCredential(env["FNO_CLIENT_SECRET"])
		c, err := d365.New(d365.Config{BaseURL: env["FNO_BASE_URL"], TenantID: env["FNO_TENANT_ID"], ClientID: env["FNO_CLIENT_ID"],
			Credential: cred, AuthorityHost: env["FNO_AUTHORITY_HOST"], Namespace: env["FNO_NAMESPACE"], HTTPClient: e.HTTPClient()})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, project := range []string{"Opening", "Budgets"} {
			pkg := d365test.NewPackage(project, d365test.PackageEntity{Name: "Customer groups", Data: []byte("A,B\r\n")})
			w, err := c.GetAzureWriteURL(ctx, project+".zip")
			if err == nil {
				err = c.UploadPackageBlocks(ctx, w.BlobURL, bytes.NewReader(pkg), int64(len(pkg)), 1<<20)
			}
			if err != nil {
				t.Fatal(err)
			}
			id, err := c.ImportFromPackage(ctx, d365.ImportPackageRequest{PackageURL: w.BlobURL, DefinitionGroupID: project, Execute: true,
				Overwrite: true, LegalEntityID: "USMF"})
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, id)
		}
		e.RunToCompletion()
		want := map[bool]d365.ExecutionStatus{true: d365.ExecSucceeded, false: d365.ExecFailed}[parallel]
		if st, err := c.GetExecutionSummaryStatus(ctx, ids[1]); err != nil || st != want {
			t.Errorf("parallel=%v: the second data project's import ended %q (%v), want %q", parallel, st, err, want)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}
