package d365_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/fno-bridge/s3-fno/pkg/d365"
	"github.com/fno-bridge/s3-fno/pkg/d365/d365test"
)

// onPremisesConfig is a client of an on-premises emulator: tokens from its
// AD FS authority, the OData endpoints under the AXSF namespace.
func onPremisesConfig(e *d365test.Emulator, secret string) d365.Config {
	cred, _ := d365.SecretCredential(secret)
	return d365.Config{BaseURL: e.URL(), TenantID: "adfs", ClientID: e.ClientID(), Credential: cred,
		AuthorityHost: e.ADFSAuthorityURL(), Namespace: d365test.OnPremisesNamespace, HTTPClient: e.HTTPClient()}
}

// TestOnPremisesPackageImport: against an on-premises environment the
// whole package import (write URL, blocks, ImportFromPackage, status)
// goes to <base>/namespaces/AXSF/data/... with a token MSAL got from AD FS
// (no tenant in the authority), and the token never goes to blob storage.
// Enqueue, which on-premises environments do not have, is refused for
// good (their 302).
func TestOnPremisesPackageImport(t *testing.T) {
	t.Parallel()
	e := newEmulator(t, d365test.Options{OnPremises: true})
	c, err := d365.New(onPremisesConfig(e, e.ClientSecret()))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	pkg := packageZip(t, "Customer groups", "Customer groups.csv")
	w, err := c.GetAzureWriteURL(ctx, "onprem.zip")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.UploadPackageBlocks(ctx, w.BlobURL, bytes.NewReader(pkg), -1, 100); err != nil {
		t.Fatal(err)
	}
	id, err := c.ImportFromPackage(ctx, d365.ImportPackageRequest{PackageURL: w.BlobURL, DefinitionGroupID: "Onprem", Execute: true,
		Overwrite: true, LegalEntityID: "USMF"})
	if err != nil {
		t.Fatal(err)
	}
	e.RunToCompletion()
	if st, err := c.GetExecutionSummaryStatus(ctx, id); err != nil || st != d365.ExecSucceeded {
		t.Fatalf("status %q, %v", st, err)
	}
	grants := e.Grants()
	if len(grants) != 1 || !grants[0].ADFS || grants[0].Scope != e.URL()+"/.default" {
		t.Fatalf("grants %+v; want one from AD FS for %s/.default", grants, e.URL())
	}
	for _, ep := range []string{"GetAzureWriteUrl", "ImportFromPackage", "GetExecutionSummaryStatus"} {
		if e.Requests(ep) != 1 {
			t.Errorf("%s: %d requests, want 1", ep, e.Requests(ep))
		}
	}
	if e.BlobSawToken() {
		t.Error("the bearer token went to blob storage")
	}
	_, err = c.Enqueue(ctx, d365.EnqueueRequest{ActivityID: importActivity, Entity: "E", Body: strings.NewReader("x"), Size: 1})
	if !errors.Is(err, d365.ErrOnPremises) {
		t.Fatalf("enqueue on-premises: %v, want ErrOnPremises", err)
	}
}

// TestOnPremisesWithoutTheNamespace: the package API called at the cloud's
// path on an on-premises environment is not found; the error says so.
func TestOnPremisesWithoutTheNamespace(t *testing.T) {
	t.Parallel()
	e := newEmulator(t, d365test.Options{OnPremises: true})
	cfg := onPremisesConfig(e, e.ClientSecret())
	cfg.Namespace = ""
	c, err := d365.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.GetAzureWriteURL(context.Background(), "x.zip")
	var fe *d365.Error
	if !errors.As(err, &fe) || fe.StatusCode != 404 {
		t.Fatalf("err = %v, want a 404", err)
	}
}

// TestADFSRefusal: AD FS refusing the secret is an *AuthError that says AD
// FS (not Entra ID), carries the MSIS code and tells where to look.
func TestADFSRefusal(t *testing.T) {
	t.Parallel()
	e := newEmulator(t, d365test.Options{OnPremises: true})
	c, err := d365.New(onPremisesConfig(e, "wrong"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.GetAzureWriteURL(context.Background(), "x.zip")
	var ae *d365.AuthError
	if !errors.As(err, &ae) || !ae.ADFS || ae.Code != "MSIS9622" || !ae.InvalidClient() {
		t.Fatalf("err = %v (%+v), want an AD FS refusal MSIS9622", err, ae)
	}
	for _, want := range []string{"AD FS refused", "application group", e.ClientID()} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q does not say %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "wrong") {
		t.Errorf("the error holds the secret: %v", err)
	}
}

// TestAuthority: Entra ID's host takes the tenant; an AD FS authority is
// used as given and takes none; anything else is refused, naming it.
func TestAuthority(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		host, tenant, want string
		adfs               bool
		bad                string
	}{
		{"", "contoso.onmicrosoft.com", d365.DefaultAuthorityHost + "/contoso.onmicrosoft.com", false, ""},
		{"https://login.microsoftonline.us/", "t", "https://login.microsoftonline.us/t", false, ""},
		{"https://adfs.contoso.com/adfs", "", "https://adfs.contoso.com/adfs", true, ""},
		{"https://adfs.contoso.com:8443/ADFS/", "adfs", "https://adfs.contoso.com:8443/adfs", true, ""},
		{"https://adfs.contoso.com/adfs", "8f6b3a52-1c0d-4e7a-9b2f-5d3c1e0a7b64", "", false, "has no tenants"},
		{"https://login.microsoftonline.com", "", "", false, "TenantID is required"},
		{"https://sts.contoso.com/other", "t", "", false, "ending in /adfs"},
		{"http://adfs.contoso.com/adfs", "", "", false, "https"},
	} {
		got, adfs, err := d365.Authority(tc.host, tc.tenant)
		switch {
		case tc.bad != "" && (err == nil || !strings.Contains(err.Error(), tc.bad)):
			t.Errorf("Authority(%q, %q) = %q, %v; want an error saying %q", tc.host, tc.tenant, got, err, tc.bad)
		case tc.bad == "" && (err != nil || got != tc.want || adfs != tc.adfs):
			t.Errorf("Authority(%q, %q) = %q, %v, %v; want %q, %v", tc.host, tc.tenant, got, adfs, err, tc.want, tc.adfs)
		}
	}
	if _, err := d365.New(d365.Config{BaseURL: "https://x", Namespace: "AX/SF", Tokens: d365.StaticTokens("t")}); err == nil {
		t.Error("a namespace with a slash was accepted")
	}
}
