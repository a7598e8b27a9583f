package fnoenv_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fno-bridge/s3-fno/internal/shared/fnoenv"
	"github.com/fno-bridge/s3-fno/pkg/d365/d365test"
)

// TestFromEnvOnPremises: an AD FS authority in FNO_AUTHORITY_HOST is
// accepted with FNO_TENANT_ID "adfs" (or none) and an FNO_NAMESPACE; what
// cannot work stops the cold start with an error naming the setting.
func TestFromEnvOnPremises(t *testing.T) {
	base := map[string]string{"FNO_BASE_URL": "https://ax.contoso.com", "FNO_CLIENT_ID": "c", "FNO_CLIENT_SECRET": "s",
		"FNO_AUTHORITY_HOST": "https://adfs.contoso.com/adfs", "FNO_TENANT_ID": "adfs", "FNO_NAMESPACE": "AXSF", "FNO_SECRET_ARN": ""}
	for _, tc := range []struct {
		name string
		set  map[string]string
		want string // "" = accepted; else what the error names
	}{
		{"AD FS", nil, ""},
		{"AD FS without a tenant", map[string]string{"FNO_TENANT_ID": ""}, ""},
		{"AD FS without a namespace", map[string]string{"FNO_NAMESPACE": ""}, "FNO_NAMESPACE is required with an AD FS authority"},
		{"AD FS with an Entra tenant", map[string]string{"FNO_TENANT_ID": "8f6b3a52-1c0d-4e7a-9b2f-5d3c1e0a7b64"}, "FNO_TENANT_ID"},
		{"a path that is not AD FS's", map[string]string{"FNO_AUTHORITY_HOST": "https://sts.contoso.com/oauth"}, "FNO_AUTHORITY_HOST"},
		{"a namespace with a slash", map[string]string{"FNO_NAMESPACE": "AX/SF"}, "FNO_NAMESPACE"},
		{"Entra ID without a tenant", map[string]string{"FNO_AUTHORITY_HOST": "", "FNO_TENANT_ID": "", "FNO_NAMESPACE": ""}, "FNO_TENANT_ID is required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range base {
				t.Setenv(k, v)
			}
			for k, v := range tc.set {
				t.Setenv(k, v)
			}
			s, err := fnoenv.FromEnv()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want == "" && s.Namespace != "AXSF":
				t.Fatalf("Namespace = %q", s.Namespace)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("err = %v, want one naming %q", err, tc.want)
			}
		})
	}
}

// TestClientOnPremises: the client built from on-premises settings signs
// in at AD FS and calls the package API under the namespace.
func TestClientOnPremises(t *testing.T) {
	e := d365test.NewT(t, d365test.Options{OnPremises: true})
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, e.CertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	s := fnoenv.Settings{BaseURL: e.URL(), TenantID: "adfs", ClientID: e.ClientID(), ClientSecret: e.ClientSecret(),
		AuthorityHost: e.ADFSAuthorityURL(), Namespace: d365test.OnPremisesNamespace, CABundle: ca}
	c, err := s.NewClient(nil, fnoenv.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetAzureWriteURL(context.Background(), "p.zip"); err != nil {
		t.Fatal(err)
	}
	if g := e.Grants(); len(g) != 1 || !g[0].ADFS || e.Requests("GetAzureWriteUrl") != 1 {
		t.Fatalf("grants %+v, GetAzureWriteUrl %d", g, e.Requests("GetAzureWriteUrl"))
	}
}
