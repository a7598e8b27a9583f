package d365test

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"unicode/utf16"
)

// The Data management package API:
// https://learn.microsoft.com/en-us/dynamics365/fin-ops-core/dev-itpro/data-entities/data-management-api

type writeURL struct {
	BlobID  string `json:"BlobId"`
	BlobURL string `json:"BlobUrl"`
}

func (e *Emulator) getAzureWriteURL(w http.ResponseWriter, r *http.Request, c *call, p params) {
	name, ok := p.str(w, "uniqueFileName")
	if !ok {
		return
	}
	if strings.TrimSpace(name) == "" || strings.Contains(name, "/") {
		writeODataError(w, http.StatusBadRequest, "An error has occurred.", "uniqueFileName must be a non-empty file name.")
		return
	}
	// The value is a JSON document inside a JSON string; clients parse twice.
	e.writeValue(w, "Edm.String", marshalString(writeURL{
		BlobID:  "{" + strings.ToUpper(newGUID()) + "}",
		BlobURL: e.sasURL(name, "rw"),
	}))
}

func (e *Emulator) importFromPackage(w http.ResponseWriter, r *http.Request, c *call, p params) {
	var pkgURL, group, execID, legal string
	var execute, overwrite bool
	if !p.read(w, strParam("packageUrl", &pkgURL), strParam("definitionGroupId", &group), strParam("executionId", &execID),
		strParam("legalEntityId", &legal), boolParam("execute", &execute), boolParam("overwrite", &overwrite)) {
		return
	}
	if strings.TrimSpace(group) == "" {
		writeODataError(w, http.StatusBadRequest, "An error has occurred.", "definitionGroupId must be specified.")
		return
	}
	name, b, err := e.blobForURL(pkgURL)
	if err != nil {
		writeODataError(w, http.StatusBadRequest, "An error has occurred.", "The package "+pkgURL+" could not be read: "+err.Error())
		return
	}
	entities, err := readPackage(b)
	if err != nil {
		writeODataError(w, http.StatusBadRequest, "An error has occurred.", err.Error())
		return
	}
	id, msg := e.createImport(group, execID, legal, name, entities, execute, overwrite)
	if msg != "" {
		writeODataError(w, http.StatusBadRequest, msg, "")
		return
	}
	e.writeValue(w, "Edm.String", id)
}

// createImport records an ImportFromPackage execution, or returns F&O's
// error message. Answers are written by the caller, never under the lock
// (a Delay fault would hold it).
func (e *Emulator) createImport(group, execID, legal, blobName string, entities []string, execute, overwrite bool) (string, string) {
	now := e.clock.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.st.projects[lower(group)] && !overwrite {
		return "", fmt.Sprintf("Data project %s exists and overwrite has not been specified.", group)
	}
	if len(e.st.entities) > 0 {
		for _, n := range entities {
			if _, ok := e.st.entities[lower(n)]; !ok {
				return "", fmt.Sprintf("Entity %s does not exist in the target environment.", n)
			}
		}
	}
	if strings.TrimSpace(execID) == "" {
		execID = executionID(group, now)
	} else if e.executionLocked(execID) != nil {
		return "", fmt.Sprintf("Execution %s already exists.", execID)
	}
	x := &execution{
		id: execID, kind: execImport, group: group, entities: entities, legal: legal,
		blobName: blobName, execute: execute, status: ExecNotRun, created: now,
	}
	e.addExecutionLocked(x)
	e.st.projects[lower(group)] = true
	return execID, ""
}

// blobForURL finds the uploaded blob a packageUrl names. Like F&O, it reads
// the package through the SAS, so the signature must still be valid.
func (e *Emulator) blobForURL(raw string) (string, *blob, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "https" || "https://"+u.Host != e.blobURL || !strings.HasPrefix(u.Path, "/dmf/") {
		return "", nil, errors.New("the URL is not a blob URL from GetAzureWriteUrl")
	}
	name := strings.TrimPrefix(u.Path, "/dmf/")
	q := u.Query()
	if se, sp := q.Get("se"), q.Get("sp"); q.Get("sig") != e.sign(sp, se, name) || !strings.Contains(sp, "r") {
		return "", nil, errors.New("the remote server returned an error: (403) Forbidden")
	} else if exp, err := parseTime(se); err != nil || !e.clock.Now().Before(exp) {
		return "", nil, errors.New("the remote server returned an error: (403) Forbidden")
	}
	e.mu.Lock()
	b := e.liveBlobLocked(name)
	e.mu.Unlock()
	if b == nil {
		return "", nil, errors.New("the remote server returned an error: (404) Not Found")
	}
	return name, b, nil
}

// packageManifest is the part of Manifest.xml the emulator checks. Element
// names match in any namespace.
type packageManifest struct {
	XMLName             xml.Name `xml:"DataManagementPackageManifest"`
	DefinitionGroupName string   `xml:"DefinitionGroupName"`
	Entities            []struct {
		EntityName    string `xml:"EntityName"`
		InputFilePath string `xml:"InputFilePath"`
	} `xml:"PackageEntityList>DataManagementPackageEntityData"`
}

type packageHeader struct {
	XMLName xml.Name `xml:"DataManagementPackageHeader"`
}

// readPackage validates a data package zip (Manifest.xml and
// PackageHeader.xml at the root, each entity's data file present) and
// returns its entity names.
func readPackage(b *blob) ([]string, error) {
	var ra io.ReaderAt = bytes.NewReader(b.data)
	if b.path != "" {
		f, err := os.Open(b.path)
		if err != nil {
			return nil, fmt.Errorf("the package could not be opened: %w", err)
		}
		defer f.Close()
		ra = f
	}
	zr, err := zip.NewReader(ra, b.size)
	if err != nil {
		return nil, fmt.Errorf("the package is not a valid zip file: %w", err)
	}
	root := map[string]*zip.File{}
	var nested []string
	for _, f := range zr.File {
		if strings.ContainsAny(f.Name, `/\`) {
			nested = append(nested, f.Name)
			continue
		}
		root[strings.ToLower(f.Name)] = f
	}
	for _, must := range []string{"Manifest.xml", "PackageHeader.xml"} {
		if root[strings.ToLower(must)] == nil {
			for _, n := range nested {
				if strings.EqualFold(n[strings.LastIndexAny(n, `/\`)+1:], must) {
					return nil, fmt.Errorf("%s is in a folder (%s); the package files must be at the root of the zip", must, n)
				}
			}
			return nil, fmt.Errorf("the package has no %s at its root", must)
		}
	}
	var hdr packageHeader
	if err := readXML(root["packageheader.xml"], &hdr); err != nil {
		return nil, fmt.Errorf("PackageHeader.xml is not a DataManagementPackageHeader: %w", err)
	}
	var m packageManifest
	if err := readXML(root["manifest.xml"], &m); err != nil {
		return nil, fmt.Errorf("Manifest.xml is not a DataManagementPackageManifest: %w", err)
	}
	if len(m.Entities) == 0 {
		return nil, errors.New("Manifest.xml lists no entities")
	}
	var names []string
	for _, ent := range m.Entities {
		name, input := strings.TrimSpace(ent.EntityName), strings.TrimSpace(ent.InputFilePath)
		if name == "" {
			return nil, errors.New("Manifest.xml has an entity without EntityName")
		}
		if input == "" || root[strings.ToLower(input)] == nil {
			return nil, fmt.Errorf("the file %q named by InputFilePath of entity %s is not at the root of the package", input, name)
		}
		names = append(names, name)
	}
	return names, nil
}

// readXML decodes a package XML file in UTF-8 or UTF-16 (the Microsoft
// sample is UTF-16LE with a BOM).
func readXML(f *zip.File, v any) error {
	rc, err := f.Open()
	if err != nil {
		return err
	}
	defer rc.Close()
	raw, err := io.ReadAll(io.LimitReader(rc, 64<<20))
	if err != nil {
		return err
	}
	d := xml.NewDecoder(bytes.NewReader(toUTF8(raw)))
	d.CharsetReader = func(_ string, in io.Reader) (io.Reader, error) { return in, nil } // already UTF-8
	return d.Decode(v)
}

func toUTF8(b []byte) []byte {
	switch {
	case bytes.HasPrefix(b, []byte{0xEF, 0xBB, 0xBF}):
		return b[3:]
	case bytes.HasPrefix(b, []byte{0xFF, 0xFE}):
		return utf16ToUTF8(b[2:], binary.LittleEndian)
	case bytes.HasPrefix(b, []byte{0xFE, 0xFF}):
		return utf16ToUTF8(b[2:], binary.BigEndian)
	}
	return b
}

func utf16ToUTF8(b []byte, order binary.ByteOrder) []byte {
	u := make([]uint16, len(b)/2)
	for i := range u {
		u[i] = order.Uint16(b[2*i:])
	}
	return []byte(string(utf16.Decode(u)))
}

func (e *Emulator) exportToPackage(w http.ResponseWriter, r *http.Request, c *call, p params) {
	var group, pkgName, execID, legal string
	var reExecute bool
	if !p.read(w, strParam("definitionGroupId", &group), strParam("packageName", &pkgName), strParam("executionId", &execID),
		strParam("legalEntityId", &legal), boolParam("reExecute", &reExecute)) {
		return
	}
	if c.fault != nil && c.fault.EmptyExecutionID {
		e.writeValue(w, "Edm.String", emptyGUID)
		return
	}
	if strings.TrimSpace(group) == "" || strings.TrimSpace(pkgName) == "" {
		writeODataError(w, http.StatusBadRequest, "An error has occurred.", "definitionGroupId and packageName must be specified.")
		return
	}
	now := e.clock.Now()
	e.mu.Lock()
	if strings.TrimSpace(execID) == "" {
		execID = executionID(group, now)
	}
	exists := e.executionLocked(execID) != nil
	if !exists {
		e.addExecutionLocked(&execution{
			id: execID, kind: execExport, group: group, packageNm: pkgName, legal: legal,
			status: ExecExecuting, created: now, started: now,
		})
	}
	e.mu.Unlock()
	if exists {
		writeODataError(w, http.StatusBadRequest, fmt.Sprintf("Execution %s already exists.", execID), "")
		return
	}
	e.writeValue(w, "Edm.String", execID) // flat; the docs also show {"value":{"value":id}}
}

// storeExportedPackageLocked puts a finished export's package in blob
// storage.
func (e *Emulator) storeExportedPackageLocked(x *execution) {
	data := e.st.exportPkgs[lower(x.group)]
	if data == nil {
		data = NewPackage(x.group, PackageEntity{
			Name: "Customer groups",
			Data: []byte("CUSTOMERGROUPID,DESCRIPTION\r\n10,Wholesale customers\r\n20,Retail customers\r\n"),
		})
	}
	name := x.packageNm
	if !strings.HasSuffix(strings.ToLower(name), ".zip") {
		name += ".zip"
	}
	x.blobName = "exports/" + x.id + "/" + name
	e.putBlobLocked(x.blobName, data)
}

func (e *Emulator) getExportedPackageURL(w http.ResponseWriter, r *http.Request, c *call, p params) {
	e.executionValue(w, p, "Edm.String", func(x *execution) any {
		if x.kind != execExport || x.blobName == "" {
			return ""
		}
		if x.outcome != nil && x.urlPolls < x.outcome.URLEmptyPolls {
			x.urlPolls++
			return ""
		}
		return e.sasURL(x.blobName, "r")
	})
}

// TemplateFiles are the Manifest.xml and PackageHeader.xml of a package of
// one entity whose data file is dataFile, as F&O exports them: what a
// package template holds.
func TemplateFiles(definitionGroup, entity, dataFile string) (manifest, header []byte) {
	pkg := NewPackage(definitionGroup, PackageEntity{Name: entity, FileName: dataFile})
	zr, err := zip.NewReader(bytes.NewReader(pkg), int64(len(pkg)))
	if err != nil {
		panic(err) // NewPackage's zip is well formed
	}
	read := func(name string) []byte {
		rc, err := zr.Open(name)
		if err != nil {
			panic(err)
		}
		defer rc.Close()
		b, err := io.ReadAll(rc)
		if err != nil {
			panic(err)
		}
		return b
	}
	return read("Manifest.xml"), read("PackageHeader.xml")
}

// PackageEntity is one entity of a data package built by NewPackage.
type PackageEntity struct {
	Name         string // the DMF entity label, e.g. "Customer groups"
	FileName     string // InputFilePath; default Name + ".csv"
	Data         []byte
	SourceFormat string // default "CSV-Unicode"
}

// NewPackage builds a data package zip that ImportFromPackage accepts:
// Manifest.xml, PackageHeader.xml and the data files at the root, XML in
// UTF-8 with a declaration, which F&O imports.
func NewPackage(definitionGroup string, entities ...PackageEntity) []byte {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	add := func(name string, data []byte) {
		f, err := zw.Create(name)
		if err == nil {
			_, err = f.Write(data)
		}
		if err != nil {
			panic(err) // writing to a bytes.Buffer does not fail
		}
	}
	var list strings.Builder
	var files []PackageEntity
	for i, ent := range entities {
		if ent.FileName == "" {
			ent.FileName = ent.Name + ".csv"
		}
		if ent.SourceFormat == "" {
			ent.SourceFormat = "CSV-Unicode"
		}
		fmt.Fprintf(&list, `
    <DataManagementPackageEntityData>
      <DefaultRefreshType>FullPush</DefaultRefreshType>
      <EntityMapList />
      <EntityName>%s</EntityName>
      <EntityTransformList />
      <ExcelSheetName i:nil="true" />
      <ExecutionUnit>1</ExecutionUnit>
      <FailExecutionUnitOnError>No</FailExecutionUnitOnError>
      <FailLevelOnError>No</FailLevelOnError>
      <InputFilePath>%s</InputFilePath>
      <LevelInExecutionUnit>1</LevelInExecutionUnit>
      <RunBusinessLogic>Yes</RunBusinessLogic>
      <RunBusinessValidation>No</RunBusinessValidation>
      <SampleFilePath i:nil="true" />
      <SequenceInLevel>%d</SequenceInLevel>
      <SourceFormat>%s</SourceFormat>
      <ValidationStatus>Yes</ValidationStatus>
    </DataManagementPackageEntityData>`, xmlEscape(ent.Name), xmlEscape(ent.FileName), i+1, xmlEscape(ent.SourceFormat))
		files = append(files, ent)
	}
	const ns = `xmlns:i="http://www.w3.org/2001/XMLSchema-instance" xmlns="http://schemas.microsoft.com/dynamics/2015/01/DataManagement"`
	add("Manifest.xml", []byte(fmt.Sprintf(`<?xml version="1.0" encoding="utf-8"?>
<DataManagementPackageManifest %s>
  <DefinitionGroupName>%s</DefinitionGroupName>
  <Description>%s</Description>
  <PackageEntityList>%s
  </PackageEntityList>
</DataManagementPackageManifest>
`, ns, xmlEscape(definitionGroup), xmlEscape(definitionGroup), list.String())))
	add("PackageHeader.xml", []byte(fmt.Sprintf(`<?xml version="1.0" encoding="utf-8"?>
<DataManagementPackageHeader %s>
  <Description>%s</Description>
  <ManifestType>Microsoft.Dynamics.AX.Framework.Tools.DataManagement.Serialization.DataManagementPackageManifest</ManifestType>
  <PackageType>DefinitionGroup</PackageType>
  <PackageVersion>2</PackageVersion>
</DataManagementPackageHeader>
`, ns, xmlEscape(definitionGroup))))
	for _, f := range files {
		add(f.FileName, f.Data)
	}
	if err := zw.Close(); err != nil {
		panic(err)
	}
	return buf.Bytes()
}
