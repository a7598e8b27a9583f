package pipelinetest

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/fno-bridge/s3-fno/internal/imports/importmsg"
	"github.com/fno-bridge/s3-fno/internal/shared/layout"
	"github.com/fno-bridge/s3-fno/internal/shared/routes"
	"github.com/fno-bridge/s3-fno/pkg/d365/d365test"
)

// PackageRoutes is a ROUTES document of package API routes (kind
// dataProject): "opening" and "budgets" import into two data projects,
// "staging" with execute=false, "keep" with overwrite=false. Their settle
// window is 0s.
const PackageRoutes = `[
 {"route":"opening","kind":"dataProject","definitionGroupId":"Opening balances","legalEntityId":"USMF","settle":"0s"},
 {"route":"budgets","kind":"dataProject","definitionGroupId":"Budgets","legalEntityId":"USMF","settle":"0s"},
 {"route":"staging","kind":"dataProject","definitionGroupId":"Staging only","legalEntityId":"USMF","execute":false,"settle":"0s"},
 {"route":"keep","kind":"dataProject","definitionGroupId":"Kept","legalEntityId":"USMF","overwrite":false,"settle":"0s"}]`

// TemplateRoute is a package API route, "groups" into data project
// "Customer groups", whose plain files are wrapped in the package template
// TemplateName (PutTemplate). Add it to a ROUTES array with WithRoute.
const TemplateRoute = `{"route":"groups","kind":"dataProject","definitionGroupId":"Customer groups","legalEntityId":"USMF",` +
	`"packageTemplate":"` + TemplateName + `","settle":"0s"}`

// TemplateName is TemplateRoute's package template.
const TemplateName = "customer-groups"

// WithRoute adds route objects to a ROUTES array.
func WithRoute(routesJSON string, route ...string) string {
	return strings.TrimSuffix(strings.TrimSpace(routesJSON), "]") + ",\n " + strings.Join(route, ",\n ") + "]"
}

// TemplateFiles are the Manifest.xml and PackageHeader.xml of a package of
// one entity (d365test.TemplateFiles).
func TemplateFiles(definitionGroup, entity, dataFile string) (manifest, header []byte) {
	return d365test.TemplateFiles(definitionGroup, entity, dataFile)
}

// PutTemplate stores the package template name (entity "Customer groups",
// data file "Customer groups.csv") under _config/templates/<name>/.
func PutTemplate(t testing.TB, c *s3.Client, bucket, name string) {
	t.Helper()
	m, h := TemplateFiles("Customer groups", "Customer groups", "Customer groups.csv")
	Put(t, c, bucket, layout.TemplateKey(name, "Manifest.xml"), m)
	Put(t, c, bucket, layout.TemplateKey(name, "PackageHeader.xml"), h)
}

// Package is a data package F&O imports, with one small data file per
// entity named.
func Package(definitionGroup string, entities ...string) []byte {
	var ents []d365test.PackageEntity
	for _, e := range entities {
		ents = append(ents, d365test.PackageEntity{Name: e, Data: []byte("ID,NAME\r\n1," + e + "\r\n")})
	}
	return d365test.NewPackage(definitionGroup, ents...)
}

// RequestRelease puts a release request for a route on the FIFO import
// queue, in the route's group, as the router does (dated an hour ago, so
// that the pass does not wait for the request's second to end).
func RequestRelease(t testing.TB, q *sqs.Client, queueURL string, rt routes.Route) {
	t.Helper()
	req := importmsg.Release{Route: rt.Name, RequestedAt: time.Now().Add(-time.Hour).UTC()}
	b, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: &queueURL, MessageBody: aws.String(string(b)),
		MessageGroupId: aws.String(rt.GroupID()), MessageDeduplicationId: aws.String(req.DedupID() + "-" + time.Now().Format("150405.000000000"))}); err != nil {
		t.Fatalf("request a release of %s: %v", rt.Name, err)
	}
}

// ZipOf is a zip of the files given (name: content), in name order.
func ZipOf(t testing.TB, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, n := range slices.Sorted(maps.Keys(files)) {
		w, err := zw.Create(n)
		if err == nil {
			_, err = io.WriteString(w, files[n])
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
