package localrun

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/fno-bridge/s3-fno/internal/imports/enqueue"
	"github.com/fno-bridge/s3-fno/internal/imports/importmsg"
	"github.com/fno-bridge/s3-fno/internal/local/moto"
	"github.com/fno-bridge/s3-fno/internal/shared/fnoenv"
	"github.com/fno-bridge/s3-fno/internal/shared/layout"
	"github.com/fno-bridge/s3-fno/internal/shared/routes"
	"github.com/fno-bridge/s3-fno/pkg/d365/d365test"
)

// SampleRoutes is the ROUTES a local invoke uses when neither the template,
// the env files nor -env give one (the same routes as events/env.local.json).
const SampleRoutes = `[{"route":"customers","activityId":"6c1b2f3a-8d4e-4f5a-9b6c-7d8e9f0a1b2c","entity":"Customer groups","company":"USMF","kind":"file"},` +
	`{"route":"vendors","activityId":"0f9e8d7c-6b5a-4c3d-8e2f-1a0b9c8d7e6f","entity":"Vendors V2","company":"USMF","kind":"file"},` +
	`{"route":"journals","activityId":"a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d","company":"USMF","kind":"package"}]`

// Sandbox is what one local invoke (cmd/invoke -local) runs a function
// against: moto_server (S3, SQS, SNS, Secrets Manager) and the F&O +
// Entra ID emulator, both on 127.0.0.1, with the template's stack
// provisioned on moto. Prepare seeds what an event names; Output keeps the
// function's metrics; Report says what the invoke changed, notified and
// counted; Close stops everything StartSandbox started.
type Sandbox struct {
	Stack    *Stack
	CABundle string // absolute path of the emulator's CA certificate (FNO_CA_BUNDLE)

	moto *moto.Server
	emu  *d365test.Emulator
	cfg  aws.Config
	s3   *s3.Client
	sqs  *sqs.Client
	dir  string

	activities []string          // registered activity IDs, in order
	seeded     map[string]object // key → the version Prepare put
	before     *snapshot
	output     *emfTee // the function's output (Output)
}

// SandboxOptions tune StartSandbox.
type SandboxOptions struct {
	// Name prefixes every provisioned resource. Default "invoke".
	Name string
	// Logs receives moto_server's output; nil discards it.
	Logs io.Writer
}

// StartSandbox starts moto_server and the F&O emulator on 127.0.0.1 and
// provisions the stack on moto (Provision). Call Close when done.
func StartSandbox(ctx context.Context, opts SandboxOptions) (_ *Sandbox, err error) {
	if opts.Name == "" {
		opts.Name = "invoke"
	}
	s := &Sandbox{seeded: map[string]object{}}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if s.moto, err = moto.Start(ctx, opts.Logs); err != nil {
		return nil, err
	}
	if s.emu, err = d365test.Start(d365test.Options{HTTPDownloadLocation: true}); err != nil {
		return nil, err
	}
	if s.dir, err = os.MkdirTemp("", "invoke-local-"); err != nil {
		return nil, err
	}
	if s.dir, err = filepath.Abs(s.dir); err != nil {
		return nil, err
	}
	if s.CABundle, err = writeCABundle(s.dir, s.emu); err != nil {
		return nil, err
	}
	s.cfg = motoConfig(s.moto.URL)
	s.s3 = newS3Client(s.cfg)
	s.sqs = sqs.NewFromConfig(s.cfg)
	// A long visibility timeout: Report reads the import queue once and
	// nothing may come back while it does.
	if s.Stack, err = Provision(ctx, s.cfg, StackSpec{Name: opts.Name, ClientSecret: s.emu.ClientSecret(),
		VisibilityTimeout: 60, MaxReceiveCount: 3}); err != nil {
		return nil, err
	}
	return s, nil
}

// Close stops moto_server (by its PID) and the emulator and removes the
// temporary folder. It is safe on a partly started sandbox.
func (s *Sandbox) Close() {
	if s == nil {
		return
	}
	if s.emu != nil {
		s.emu.Close()
	}
	s.moto.Close()
	if s.dir != "" {
		os.RemoveAll(s.dir)
	}
}

// MotoURL is moto_server's endpoint.
func (s *Sandbox) MotoURL() string { return s.moto.URL }

// Emulator is the F&O emulator, for callers that script it further.
func (s *Sandbox) Emulator() *d365test.Emulator { return s.emu }

// unsetLocal are removed from a local invoke's environment: they would take
// the function away from the stand-ins (a real profile or session, a
// service-specific endpoint) or around Secrets Manager (FNO_CLIENT_SECRET).
var unsetLocal = []string{"AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE",
	"FNO_CLIENT_SECRET"}

// Apply points a function's environment at the sandbox (standInEnv), after
// removing what would lead it elsewhere. ROUTES is kept; when it is not set,
// SampleRoutes is used. It returns notes for the user.
func (s *Sandbox) Apply(env map[string]string) []string {
	var notes []string
	for k := range env {
		if strings.HasPrefix(k, "AWS_ENDPOINT_URL_") {
			delete(env, k)
		}
	}
	for _, k := range unsetLocal {
		delete(env, k)
	}
	for k, v := range standInEnv(s.moto, s.emu, s.Stack, s.CABundle) {
		env[k] = v
	}
	if strings.TrimSpace(env["ROUTES"]) == "" {
		env["ROUTES"] = SampleRoutes
		notes = append(notes, "ROUTES is not set (no -env-file?): using the sample routes customers, vendors, journals")
	}
	return notes
}

// Prepared is an event made ready for the sandbox.
type Prepared struct {
	Event []byte   // the event to invoke with
	Notes []string // what was registered, seeded and rewritten
}

// Prepare readies the sandbox for one event and the function environment
// env (after Apply and any overrides). It registers each route of ROUTES as
// an emulator activity and points the event at the provisioned bucket. With
// seed it also puts the objects the event names (rewriting their size, eTag
// and versionId to match), queues an export for an export job, or gives the
// poller a file in flight. It then takes the snapshot Report compares against.
func (s *Sandbox) Prepare(ctx context.Context, event []byte, env map[string]string, seed bool) (Prepared, error) {
	p := &preparer{s: s, env: env, seed: seed}
	rc, err := routes.FromEnv(func(k string) string { return env[k] })
	if err != nil {
		p.note("%v: no import activities registered (the function will say the same)", err)
		rc = routes.Config{Bucket: env["BUCKET"], Layout: layout.Default()}
	}
	p.rc = rc
	if rc.Routes != nil {
		var names []string
		for _, r := range rc.Routes.All() {
			name := "Import " + r.Name
			if r.Entity != "" {
				name = "Import " + r.Entity
			}
			kind := d365test.File
			if r.Kind == routes.KindPackage {
				kind = d365test.Package
			}
			s.addActivity(r.ActivityID, d365test.Activity{Name: name, Kind: kind, InOrder: kind == d365test.File})
			names = append(names, fmt.Sprintf("%s → %s", r.Name, r.ActivityID))
		}
		p.note("F&O emulator: import activities registered from ROUTES: %s", strings.Join(names, ", "))
	}

	out := event
	var doc map[string]any
	dec := json.NewDecoder(bytes.NewReader(event))
	dec.UseNumber()
	if err := dec.Decode(&doc); err == nil && doc != nil {
		changed, err := p.event(ctx, doc)
		if err != nil {
			return Prepared{}, err
		}
		if changed {
			if out, err = json.Marshal(doc); err != nil {
				return Prepared{}, err
			}
		}
	}
	if s.before, err = s.snapshot(ctx); err != nil {
		return Prepared{}, err
	}
	return Prepared{Event: out, Notes: p.notes}, nil
}

func (s *Sandbox) addActivity(id string, a d365test.Activity) {
	for _, known := range s.activities {
		if strings.EqualFold(known, id) {
			return
		}
	}
	s.emu.AddActivity(id, a)
	s.activities = append(s.activities, id)
}

// preparer is one Prepare.
type preparer struct {
	s     *Sandbox
	env   map[string]string
	rc    routes.Config
	seed  bool
	notes []string
}

func (p *preparer) note(format string, a ...any) {
	p.notes = append(p.notes, fmt.Sprintf(format, a...))
}

// event recognizes the event by its shape and prepares for it. It reports
// whether doc was rewritten.
func (p *preparer) event(ctx context.Context, doc map[string]any) (bool, error) {
	if recs, ok := doc["Records"].([]any); ok {
		return p.records(ctx, recs)
	}
	if id, ok := doc["activityId"].(string); ok {
		return false, p.export(doc, id)
	}
	if _, ok := doc["task"]; ok {
		return false, p.pollerWork(ctx)
	}
	if _, ok := doc["detail-type"]; ok {
		return false, p.pollerWork(ctx)
	}
	return false, nil
}

// records prepares an SQS event (notification or FIFO import bodies) or a
// direct S3 event.
func (p *preparer) records(ctx context.Context, recs []any) (bool, error) {
	changed := false
	for i, r := range recs {
		rec, ok := r.(map[string]any)
		if !ok {
			continue
		}
		if _, ok := rec["s3"]; ok {
			c, err := p.s3Record(ctx, rec)
			if err != nil {
				return false, fmt.Errorf("event record %d: %w", i, err)
			}
			changed = changed || c
			continue
		}
		body, ok := rec["body"].(string)
		if !ok {
			continue
		}
		var inner map[string]any
		dec := json.NewDecoder(strings.NewReader(body))
		dec.UseNumber()
		if dec.Decode(&inner) != nil || inner == nil {
			continue
		}
		c, err := p.body(ctx, inner)
		if err != nil {
			return false, fmt.Errorf("event record %d (%v): %w", i, rec["messageId"], err)
		}
		if !c {
			continue
		}
		nb, err := json.Marshal(inner)
		if err != nil {
			return false, err
		}
		rec["body"] = string(nb)
		sum := md5.Sum(nb)
		if _, ok := rec["md5OfBody"]; ok {
			rec["md5OfBody"] = hex.EncodeToString(sum[:])
		}
		changed = true
	}
	return changed, nil
}

// body prepares one SQS message body.
func (p *preparer) body(ctx context.Context, b map[string]any) (bool, error) {
	switch {
	case b["Event"] == "s3:TestEvent":
		if _, ok := b["Bucket"]; ok {
			b["Bucket"] = p.s.Stack.Bucket
			return true, nil
		}
		return false, nil
	case b["Records"] != nil:
		recs, _ := b["Records"].([]any)
		changed := false
		for i, r := range recs {
			rec, ok := r.(map[string]any)
			if !ok {
				continue
			}
			c, err := p.s3Record(ctx, rec)
			if err != nil {
				return false, fmt.Errorf("notification record %d: %w", i, err)
			}
			changed = changed || c
		}
		return changed, nil
	}
	key, ok := b["key"].(string)
	if _, hasBucket := b["bucket"]; !ok || !hasBucket {
		return false, nil
	}
	// A FIFO import message (importmsg.File): the key is decoded.
	b["bucket"] = p.s.Stack.Bucket
	if !p.seed {
		return true, nil
	}
	if err := p.seedObject(ctx, key, b, "etag"); err != nil {
		return false, err
	}
	return true, nil
}

// s3Record prepares one S3 notification record.
func (p *preparer) s3Record(ctx context.Context, rec map[string]any) (bool, error) {
	s3m, ok := rec["s3"].(map[string]any)
	if !ok {
		return false, nil
	}
	if b, ok := s3m["bucket"].(map[string]any); ok {
		b["name"] = p.s.Stack.Bucket
		if _, ok := b["arn"]; ok {
			b["arn"] = "arn:aws:s3:::" + p.s.Stack.Bucket
		}
	}
	o, ok := s3m["object"].(map[string]any)
	name, _ := rec["eventName"].(string)
	if !ok || !p.seed || !strings.HasPrefix(name, "ObjectCreated:") {
		return true, nil
	}
	raw, _ := o["key"].(string)
	key, err := url.QueryUnescape(raw)
	if err != nil || key == "" {
		return true, nil // the router rejects it as malformed; nothing to seed
	}
	if err := p.seedObject(ctx, key, o, "eTag"); err != nil {
		return false, err
	}
	return true, nil
}

// seedObject puts key (empty when fields say size 0) and writes the version
// put into fields: size, the ETag under etagField, and versionId.
func (p *preparer) seedObject(ctx context.Context, key string, fields map[string]any, etagField string) error {
	size, known := number(fields["size"])
	obj, err := p.put(ctx, key, known && size == 0)
	if err != nil {
		return err
	}
	fields["size"], fields[etagField] = obj.Size, obj.ETag
	if obj.VersionID != "" {
		fields["versionId"] = obj.VersionID
	} else {
		delete(fields, "versionId")
	}
	return nil
}

// object is a version Prepare put.
type object struct {
	VersionID, ETag string
	Size            int64
}

// put puts key once with a sample body (empty when asked) and returns
// the version.
func (p *preparer) put(ctx context.Context, key string, empty bool) (object, error) {
	if o, ok := p.s.seeded[key]; ok {
		return o, nil
	}
	var body []byte
	if !empty {
		body = p.sampleBody(key)
	}
	out, err := p.s.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: &p.s.Stack.Bucket, Key: &key, Body: bytes.NewReader(body)})
	if err != nil {
		return object{}, fmt.Errorf("seed %s: %w", key, err)
	}
	o := object{VersionID: aws.ToString(out.VersionId), ETag: strings.Trim(aws.ToString(out.ETag), `"`), Size: int64(len(body))}
	p.s.seeded[key] = o
	p.note("S3: put s3://%s/%s (%d bytes, version %s)", p.s.Stack.Bucket, key, o.Size, o.VersionID)
	return o, nil
}

// sampleBody is a small file for key: a data package for a package route,
// else a CSV.
func (p *preparer) sampleBody(key string) []byte {
	route, file, _ := p.rc.Layout.Split(key)
	if p.rc.Routes != nil {
		if r, ok := p.rc.Routes.Lookup(route); ok && r.Kind == routes.KindPackage {
			return d365test.NewPackage("Local invoke "+r.Name, d365test.PackageEntity{
				Name: "Ledger journal entries", Data: []byte("JOURNALBATCHNUMBER,LINENUMBER,TEXT\r\n000001,1,Sample from " + file + "\r\n")})
		}
	}
	return []byte("ID,NAME\r\n1,Sample from " + file + "\r\n")
}

// export prepares an export job input.
func (p *preparer) export(doc map[string]any, activityID string) error {
	job, _ := doc["job"].(string)
	unpack, _ := doc["unpack"].(bool)
	if !isGUID(activityID) {
		p.note("export input: activityId %q is not a GUID; nothing registered (the function will refuse it)", activityID)
		return nil
	}
	kind := d365test.File
	if unpack {
		kind = d365test.Package
	}
	p.s.addActivity(activityID, d365test.Activity{Name: "Export " + job, Kind: kind})
	p.note("F&O emulator: export activity %s registered (job %q)", activityID, job)
	if !p.seed {
		return nil
	}
	var x d365test.Export
	if unpack {
		x.Body = d365test.NewPackage("Local invoke "+job,
			d365test.PackageEntity{Name: "Vendor groups", Data: []byte("VENDGROUP,NAME\r\nV10,Domestic\r\n")},
			d365test.PackageEntity{Name: "Vendors V2", Data: []byte("VENDORACCOUNTNUMBER,NAME\r\nUS-101,Fabrikam\r\n")})
		x.FileName = safeName(job) + ".zip"
	} else {
		x.Body = []byte("CUSTGROUP,NAME\r\n10,Wholesale\r\n20,Retail\r\n")
		x.FileName = safeName(job) + ".csv"
	}
	x.Size = int64(len(x.Body))
	corr := p.s.emu.QueueExport(activityID, x)
	what := "a file"
	if unpack {
		what = "a data package with 2 entity files"
	}
	p.note("F&O emulator: queued one export for %s: %s, %s (%d bytes, correlation ID %s)", activityID, what, x.FileName, x.Size, corr)
	return nil
}

// pollerWork gives the poller a file in flight: one sample file is put
// under the first route, enqueued in F&O by the enqueue function's own code
// (in process), and finished by the emulator; its ledger record is due at
// once.
func (p *preparer) pollerWork(ctx context.Context) error {
	if !p.seed || p.rc.Routes == nil || p.rc.Routes.Len() == 0 {
		return nil
	}
	rt := p.rc.Routes.All()[0]
	for _, r := range p.rc.Routes.All() {
		if r.Kind == routes.KindFile {
			rt = r
			break
		}
	}
	key := p.rc.Layout.InboundKey(rt.Name, "local-invoke-sample.csv")
	if rt.Kind == routes.KindPackage {
		key = p.rc.Layout.InboundKey(rt.Name, "local-invoke-sample.zip")
	}
	obj, err := p.put(ctx, key, false)
	if err != nil {
		return err
	}
	cfg, err := enqueue.ConfigFromEnv(func(k string) string { return p.env[k] })
	if err != nil {
		return fmt.Errorf("enqueue a sample file for the poller: %w", err)
	}
	cfg.FirstCheck = time.Nanosecond // due at once
	fs := fnoenv.Settings{BaseURL: p.s.emu.URL(), TenantID: p.s.emu.TenantID(), ClientID: p.s.emu.ClientID(),
		SecretARN: p.s.Stack.SecretARN, AuthorityHost: authorityHost(p.s.emu),
		CABundle: p.s.CABundle}
	fno, err := fs.NewClient(secretsmanager.NewFromConfig(p.s.cfg), fnoenv.Options{})
	if err != nil {
		return err
	}
	h, err := enqueue.New(cfg, p.s.s3, fno, p.s.sqs, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		return err
	}
	fm, _ := json.Marshal(importmsg.File{Bucket: p.s.Stack.Bucket, Key: key, VersionID: obj.VersionID, ETag: obj.ETag,
		Size: obj.Size, Route: rt.Name, EventTime: time.Now().UTC()})
	ictx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	resp, err := h.Handle(ictx, events.SQSEvent{Records: []events.SQSMessage{{MessageId: "local-invoke-seed", Body: string(fm)}}})
	if err == nil && len(resp.BatchItemFailures) > 0 {
		err = errors.New("the enqueue returned it for retry")
	}
	if err != nil {
		return fmt.Errorf("enqueue a sample file for the poller: %s: %w", key, err)
	}
	p.s.emu.RunToCompletion()
	for _, m := range p.s.emu.Messages() {
		if m.ExternalID == enqueue.ExternalID(key) {
			p.note("F&O emulator: enqueued %s as message %s for the poller to follow; F&O has finished it: %s", key, m.ID, m.Status)
		}
	}
	return nil
}

func number(v any) (int64, bool) {
	switch n := v.(type) {
	case json.Number:
		i, err := n.Int64()
		return i, err == nil
	case float64:
		return int64(n), true
	}
	return 0, false
}

func isGUID(s string) bool {
	s = strings.Trim(strings.TrimSpace(s), "{}")
	if len(s) != 36 {
		return false
	}
	for i, c := range s {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !strings.ContainsRune("0123456789abcdefABCDEF", c) {
				return false
			}
		}
	}
	return true
}

// safeName keeps letters, digits, '-' and '_' of a job name for a file name.
func safeName(s string) string {
	var b strings.Builder
	for _, c := range s {
		if c == '-' || c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') {
			b.WriteRune(c)
		}
	}
	if b.Len() == 0 {
		return "export"
	}
	return b.String()
}
