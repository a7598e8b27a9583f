package d365test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
)

// OData actions on DataManagementDefinitionGroups.

// params is an action's JSON body.
type params map[string]json.RawMessage

type action struct {
	required, optional []string
	run                func(w http.ResponseWriter, r *http.Request, c *call, p params)
}

func (e *Emulator) actions() map[string]action {
	execOnly := []string{"executionId"}
	errFile := []string{"executionId", "entityName"}
	importArgs := []string{"executionId", "execute", "overwrite", "legalEntityId"}
	exportArgs := []string{"executionId", "reExecute", "legalEntityId"}
	return map[string]action{
		"GetMessageStatus":                    {required: []string{"messageId"}, run: e.getMessageStatus},
		"GetExecutionIdByMessageId":           {required: []string{"_messageId"}, run: e.getExecutionIDByMessageID},
		"GetExecutionSummaryStatus":           {required: execOnly, run: e.getExecutionSummaryStatus},
		"GetExecutionErrors":                  {required: execOnly, run: e.getExecutionErrors},
		"GetImportStagingErrorFileUrl":        {required: errFile, run: e.getStagingErrorFileURL},
		"GenerateImportTargetErrorKeysFile":   {required: errFile, run: e.generateTargetKeys},
		"GetImportTargetErrorKeysFileUrl":     {required: errFile, run: e.getTargetKeysURL},
		"GetEntityExecutionSummaryStatusList": {required: execOnly, run: e.getEntitySummaries},
		"GetExecutionSummaryPageUrl":          {required: execOnly, run: e.getSummaryPageURL},
		"GetAzureWriteUrl":                    {required: []string{"uniqueFileName"}, run: e.getAzureWriteURL},
		"ImportFromPackage":                   {required: []string{"packageUrl", "definitionGroupId"}, optional: importArgs, run: e.importFromPackage},
		"ImportFromPackageAsync":              {required: []string{"packageUrl", "definitionGroupId"}, optional: importArgs, run: e.importFromPackage},
		"ExportToPackage":                     {required: []string{"definitionGroupId", "packageName"}, optional: exportArgs, run: e.exportToPackage},
		"ExportToPackageAsync":                {required: []string{"definitionGroupId", "packageName"}, optional: exportArgs, run: e.exportToPackage},
		"ExportToPackagePreview":              {required: []string{"definitionGroupId", "packageName"}, optional: append(exportArgs, "count"), run: e.exportToPackage},
		"GetExportedPackageUrl":               {required: execOnly, run: e.getExportedPackageURL},
		"InitializeDataManagement":            {run: noContent},
	}
}

// odataAction returns the handler for an action name: parse and check the
// parameters the way OData does, then run it.
func (e *Emulator) odataAction(name string) handlerFunc {
	a, ok := e.actions()[name]
	if !ok {
		return func(w http.ResponseWriter, r *http.Request, c *call) {
			writeODataError(w, http.StatusNotFound, "No HTTP resource was found that matches the request URI '"+e.foURL+r.URL.Path+"'.", "")
		}
	}
	return func(w http.ResponseWriter, r *http.Request, c *call) {
		raw, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			writeODataError(w, http.StatusBadRequest, "An error has occurred.", "could not read the request body")
			return
		}
		p := params{}
		if len(strings.TrimSpace(string(raw))) > 0 {
			if err := json.Unmarshal(raw, &p); err != nil || p == nil {
				writeODataError(w, http.StatusBadRequest, "The request body is not a JSON object of action parameters.", "")
				return
			}
		}
		known := map[string]bool{}
		for _, k := range append(append([]string(nil), a.required...), a.optional...) {
			known[k] = true
		}
		var unknown []string
		for k := range p {
			if !known[k] {
				unknown = append(unknown, k)
			}
		}
		if len(unknown) > 0 {
			sort.Strings(unknown)
			writeODataError(w, http.StatusBadRequest, fmt.Sprintf(
				"The parameter '%s' in the request payload is not a valid parameter for the operation '%s'.", unknown[0], name), "")
			return
		}
		for _, k := range a.required {
			if _, ok := p[k]; !ok {
				writeODataError(w, http.StatusBadRequest, fmt.Sprintf(
					"The parameter '%s' is missing from the request payload of the operation '%s'.", k, name), "")
				return
			}
		}
		a.run(w, r, c, p)
	}
}

// str reads a string parameter; ok is false (and the error answered) when
// it is not a JSON string or null.
func (p params) str(w http.ResponseWriter, name string) (string, bool) {
	raw, present := p[name]
	if !present || string(raw) == "null" {
		return "", true
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		writeODataError(w, http.StatusBadRequest, fmt.Sprintf(
			"Cannot convert the literal '%s' to the expected type 'Edm.String'.", string(raw)), "")
		return "", false
	}
	return s, true
}

// boolean reads a Boolean parameter like str.
func (p params) boolean(w http.ResponseWriter, name string) (bool, bool) {
	raw, present := p[name]
	if !present || string(raw) == "null" {
		return false, true
	}
	var b bool
	if err := json.Unmarshal(raw, &b); err != nil {
		writeODataError(w, http.StatusBadRequest, fmt.Sprintf(
			"Cannot convert the literal '%s' to the expected type 'Edm.Boolean'.", string(raw)), "")
		return false, false
	}
	return b, true
}

// param binds an action parameter to the variable its value goes to.
type param struct {
	name string
	s    *string // a string parameter, or
	b    *bool   // a Boolean one
}

func strParam(name string, s *string) param { return param{name: name, s: s} }
func boolParam(name string, b *bool) param  { return param{name: name, b: b} }

// read reads params in order with str or boolean. It stops at the first of
// the wrong type (whose error it has answered) and reports whether all were
// read.
func (p params) read(w http.ResponseWriter, ps ...param) bool {
	for _, f := range ps {
		ok := true
		if f.s != nil {
			*f.s, ok = p.str(w, f.name)
		} else {
			*f.b, ok = p.boolean(w, f.name)
		}
		if !ok {
			return false
		}
	}
	return true
}

func noContent(w http.ResponseWriter, _ *http.Request, _ *call, _ params) {
	w.WriteHeader(http.StatusNoContent)
}

func (e *Emulator) getMessageStatus(w http.ResponseWriter, r *http.Request, c *call, p params) {
	id, ok := p.str(w, "messageId")
	if !ok {
		return
	}
	g, _ := normGUID(id)
	e.mu.Lock()
	status := ""
	if m := e.st.msgByID[g]; m != nil {
		status = m.status
	} else if x := e.st.exports[g]; x != nil {
		switch {
		case x.acked:
			status = StatusAcked
		case x.dequeues > 0:
			status = StatusDequeued
		default:
			status = StatusEnqueued
		}
	}
	e.mu.Unlock()
	if status == "" {
		if s := e.opts.UnknownMessageHTTPStatus; s != 0 && s != http.StatusOK {
			writeODataError(w, s, "An error has occurred.", "Message "+id+" was not found.")
			return
		}
		status = e.opts.UnknownMessageStatus
	}
	e.writeValue(w, "Edm.String", status)
}

func (e *Emulator) getExecutionIDByMessageID(w http.ResponseWriter, r *http.Request, c *call, p params) {
	id, ok := p.str(w, "_messageId")
	if !ok {
		return
	}
	g, _ := normGUID(id)
	e.mu.Lock()
	exec := emptyGUID
	if m := e.st.msgByID[g]; m != nil && m.execID != "" {
		exec = m.execID
	}
	e.mu.Unlock()
	e.writeValue(w, "Edm.String", exec)
}

// executionValue answers an action on the execution named by executionId
// with the value of the given EDM type that value computes from it under
// the lock, or with the 400 F&O gives before an execution exists. The
// answer is written after the lock is released: a Delay fault holds it.
func (e *Emulator) executionValue(w http.ResponseWriter, p params, edmType string, value func(x *execution) any) {
	id, ok := p.str(w, "executionId")
	if !ok {
		return
	}
	e.mu.Lock()
	x := e.executionLocked(id)
	var v any
	if x != nil {
		v = value(x)
	}
	e.mu.Unlock()
	if x == nil {
		writeODataError(w, http.StatusBadRequest,
			fmt.Sprintf("Execution details for execution ID '%s' were not found.", id), "")
		return
	}
	e.writeValue(w, edmType, v)
}

func (e *Emulator) getExecutionSummaryStatus(w http.ResponseWriter, r *http.Request, c *call, p params) {
	e.executionValue(w, p, "Edm.String", func(x *execution) any { return x.status })
}

func (e *Emulator) getExecutionErrors(w http.ResponseWriter, r *http.Request, c *call, p params) {
	e.executionValue(w, p, "Edm.String", func(x *execution) any {
		if x.outcome != nil && len(x.outcome.Errors) > 0 {
			return e.errorsText(x.outcome.Errors)
		}
		return "[]"
	})
}

// rawErrorSuffix is added to each message with RawNewlinesInErrors, so the
// text surely holds a raw CR/LF and an unescaped quote.
const rawErrorSuffix = "\r\nSee \"Execution log\" for details."

// errorsText is GetExecutionErrors' value: a JSON array serialized into a
// string. With RawNewlinesInErrors the messages are written
// unescaped, as large real results are, so the text is not strict JSON.
func (e *Emulator) errorsText(errs []ExecutionError) string {
	if !e.opts.RawNewlinesInErrors {
		return marshalString(errs)
	}
	var b strings.Builder
	b.WriteByte('[')
	for i, er := range errs {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"RecordId":%s,"Field":%s,"ErrorMessage":"%s%s"}`,
			marshalString(er.RecordId), marshalString(er.Field), er.ErrorMessage, rawErrorSuffix)
	}
	b.WriteByte(']')
	return b.String()
}

// errorFileName is the blob name of an execution's error file.
func errorFileName(x *execution, entity, kind string) string {
	return "errors/" + x.id + "/" + entity + "-" + kind + ".csv"
}

func (e *Emulator) getStagingErrorFileURL(w http.ResponseWriter, r *http.Request, c *call, p params) {
	entity, ok := p.str(w, "entityName")
	if !ok {
		return
	}
	e.executionValue(w, p, "Edm.String", func(x *execution) any {
		if x.outcome == nil {
			return ""
		}
		data := entityFile(x.outcome.StagingErrorFiles, entity, x.outcome.StagingErrorFile)
		if data == nil {
			return ""
		}
		name := errorFileName(x, entity, "staging")
		e.putBlobLocked(name, data)
		return e.sasURL(name, "r")
	})
}

func (e *Emulator) generateTargetKeys(w http.ResponseWriter, r *http.Request, c *call, p params) {
	entity, ok := p.str(w, "entityName")
	if !ok {
		return
	}
	e.executionValue(w, p, "Edm.Boolean", func(x *execution) any {
		has := x.outcome != nil && entityFile(x.outcome.TargetErrorKeysFiles, entity, x.outcome.TargetErrorKeysFile) != nil
		if has && !x.targetKeysRequested {
			x.targetKeysRequested, x.targetKeysPolls = true, 0
		}
		return has
	})
}

func (e *Emulator) getTargetKeysURL(w http.ResponseWriter, r *http.Request, c *call, p params) {
	entity, ok := p.str(w, "entityName")
	if !ok {
		return
	}
	e.executionValue(w, p, "Edm.String", func(x *execution) any {
		if !x.targetKeysRequested || x.outcome == nil {
			return ""
		}
		if x.targetKeysPolls < x.outcome.TargetKeysEmptyPolls {
			x.targetKeysPolls++
			return ""
		}
		data := entityFile(x.outcome.TargetErrorKeysFiles, entity, x.outcome.TargetErrorKeysFile)
		if data == nil {
			return ""
		}
		name := errorFileName(x, entity, "targetkeys")
		e.putBlobLocked(name, data)
		return e.sasURL(name, "r")
	})
}

// entitySummariesLocked is the per-entity breakdown of an execution, in the
// shape of jobstatus' ExecutionDetail. The same objects are
// GetEntityExecutionSummaryStatusList's value, whose real shape is not
// documented.
func (e *Emulator) entitySummariesLocked(x *execution) []map[string]any {
	names := x.entities
	if len(names) == 0 {
		names = []string{""}
	}
	staging, target := x.status, x.status
	stagingErrs, targetErrs := 0, 0
	if x.outcome != nil {
		if x.outcome.Status == StatusPreProcessingError {
			target = ExecNotRun
			stagingErrs = len(x.outcome.Errors)
		} else {
			staging = ExecSucceeded
			targetErrs = len(x.outcome.Errors)
		}
	}
	var started, completed any
	if !x.started.IsZero() {
		started = dotnetTime(x.started)
	}
	if !x.completed.IsZero() {
		completed = dotnetTime(x.completed)
	}
	out := make([]map[string]any, 0, len(names))
	for _, n := range names {
		out = append(out, map[string]any{
			"EntityName": n, "Company": x.legal, "ExecutionStatus": x.status,
			"StagingRecords": 0, "StagingStatus": staging, "StagingErrorCount": stagingErrs,
			"TargetRecords": 0, "TargetStatus": target, "TargetErrorCount": targetErrs,
			"ExecutionStartedDateTime": started, "ExecutionCompletedDateTime": completed,
		})
	}
	return out
}

func (e *Emulator) getEntitySummaries(w http.ResponseWriter, r *http.Request, c *call, p params) {
	e.executionValue(w, p, "Collection(Microsoft.Dynamics.DataEntities.DMFEntityExecutionSummaryStatus)",
		func(x *execution) any { return e.entitySummariesLocked(x) })
}

func (e *Emulator) getSummaryPageURL(w http.ResponseWriter, r *http.Request, c *call, p params) {
	e.executionValue(w, p, "Edm.String", func(x *execution) any {
		return e.foURL + "/?mi=DMFExecutionSummary&ExecutionId=" + url.QueryEscape(x.id)
	})
}
