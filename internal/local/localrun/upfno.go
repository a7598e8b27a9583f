package localrun

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"

	fnoconfig "github.com/fno-bridge/s3-fno/internal/shared/config"
	"github.com/fno-bridge/s3-fno/internal/shared/routes"
	"github.com/fno-bridge/s3-fno/pkg/d365/d365test"
)

// SampleConfig is the configuration document `localrun up` starts with on
// the emulator when none is given: three file routes, a data project and
// two export jobs (their schedules are the usual kind; s3fno jobs run runs
// one now).
const SampleConfig = `{
  "routes": [
    {"route": "customers", "activityId": "3f1b2c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d", "entity": "Customer groups", "company": "USMF"},
    {"route": "vendors", "activityId": "7a6b5c4d-3e2f-4109-8a7b-6c5d4e3f2a1b", "entity": "Vendor groups", "company": "USMF", "pauseOnFailure": true},
    {"route": "journals", "activityId": "0a0b0c0d-1111-4222-8333-444455556666", "entity": "General journal", "company": "USMF", "order": "name"},
    {"route": "opening", "kind": "dataProject", "definitionGroupId": "Opening balances", "legalEntityId": "USMF"}
  ],
  "jobs": [
    {"job": "customer-groups", "schedule": "cron(0 6 * * ? *)", "timezone": "Europe/Amsterdam",
     "activityId": "e1e2e3e4-0000-4000-8000-000000000001", "prefix": "outbound/customer-groups/"},
    {"job": "vendor-package", "schedule": "rate(1 hour)", "activityId": "e1e2e3e4-0000-4000-8000-000000000002", "unpack": true}
  ]
}
`

// FnOSettings are a real F&O environment (a sandbox tenant) for `up`: the
// functions get them as on AWS, with the client secret in moto's Secrets
// Manager.
type FnOSettings struct {
	BaseURL, TenantID, ClientID string
	ClientSecret                string // stored in Secrets Manager, never in the env file
	AuthorityHost               string // "" is Entra ID's public cloud
	CABundle                    string // a PEM file of CAs to trust; "" trusts the system's
}

// check says which setting is missing or unusable.
func (f *FnOSettings) check() error {
	for _, s := range []struct{ name, v string }{{"-fno-base-url (FNO_BASE_URL)", f.BaseURL}, {"-fno-tenant-id (FNO_TENANT_ID)", f.TenantID},
		{"-fno-client-id (FNO_CLIENT_ID)", f.ClientID}, {"FNO_CLIENT_SECRET (the environment only)", f.ClientSecret}} {
		if strings.TrimSpace(s.v) == "" {
			return fmt.Errorf("a real F&O needs %s", s.name)
		}
	}
	if !strings.HasPrefix(f.BaseURL, "https://") {
		return fmt.Errorf("-fno-base-url %q: F&O is reached over https", f.BaseURL)
	}
	if f.CABundle != "" {
		abs, err := filepath.Abs(f.CABundle)
		if err == nil {
			_, err = os.Stat(abs)
		}
		if err != nil {
			return fmt.Errorf("-fno-ca-bundle: %w", err)
		}
		f.CABundle = abs
	}
	return nil
}

// emulatorSync keeps the emulator in step with the configuration document:
// every route's and job's activity is known to it (a route of kind file as
// an in-order job), and each job's activity gets one sample export when it
// is first seen, so that its first run lands a file.
type emulatorSync struct {
	emu   *d365test.Emulator
	store *fnoconfig.Store
	known map[string]bool
	say   func(format string, a ...any)
}

func newEmulatorSync(emu *d365test.Emulator, s3c fnoconfig.S3, bucket, key string, say func(string, ...any)) *emulatorSync {
	return &emulatorSync{emu: emu, known: map[string]bool{}, say: say,
		store: &fnoconfig.Store{S3: s3c, Bucket: bucket, Key: key, Log: slog.New(slog.DiscardHandler)}}
}

// step reads the document (a conditional GET when unchanged) and registers
// what is new.
func (e *emulatorSync) step(ctx context.Context) {
	doc, err := e.store.Load(ctx)
	if err != nil || doc == nil {
		return
	}
	var added []string
	for _, r := range doc.Routes.All() {
		if r.ActivityID == "" || e.known[strings.ToLower(r.ActivityID)] {
			continue
		}
		a := d365test.Activity{Name: "Import " + cmp.Or(r.Entity, r.Name), InOrder: true}
		if r.Kind == routes.KindPackage {
			a = d365test.Activity{Name: "Import " + cmp.Or(r.Entity, r.Name), Kind: d365test.Package}
		}
		e.emu.AddActivity(r.ActivityID, a)
		e.known[strings.ToLower(r.ActivityID)] = true
		added = append(added, "route "+r.Name)
	}
	for _, j := range doc.Jobs {
		var in struct {
			ActivityID string `json:"activityId"`
			Unpack     bool   `json:"unpack"`
		}
		if json.Unmarshal(j.Input, &in) != nil || in.ActivityID == "" || e.known[strings.ToLower(in.ActivityID)] {
			continue
		}
		e.known[strings.ToLower(in.ActivityID)] = true
		kind := d365test.File
		if in.Unpack {
			kind = d365test.Package
		}
		e.emu.AddActivity(in.ActivityID, d365test.Activity{Name: "Export " + j.Name, Kind: kind})
		e.emu.QueueExport(in.ActivityID, sampleExport(j.Name, in.Unpack))
		added = append(added, "job "+j.Name+" (one export queued)")
	}
	if len(added) > 0 {
		slices.Sort(added)
		e.say("  F&O emulator: activities registered for %s", strings.Join(added, ", "))
	}
}

// sampleExport is what a job's activity hands out first: a small CSV, or
// a data package of two entities for a job that unpacks.
func sampleExport(job string, pkg bool) d365test.Export {
	if pkg {
		b := d365test.NewPackage("Sample "+job, d365test.PackageEntity{Name: "Vendor groups", Data: []byte("VENDGROUP,NAME\r\nV10,Domestic\r\n")},
			d365test.PackageEntity{Name: "Vendors V2", Data: []byte("VENDORACCOUNTNUMBER,NAME\r\nUS-101,Fabrikam\r\n")})
		return d365test.Export{Body: b, FileName: job + ".zip"}
	}
	return d365test.Export{Body: []byte("ID,NAME\r\n1,Sample\r\n"), FileName: job + ".csv"}
}
