package d365test

import (
	"fmt"
	"strings"
	"time"
)

// The import lifecycle: a batch run (Tick), driven by the test, moves each
// message Enqueued -> Preprocessing -> Processing -> terminal, with the
// outcome the test scripted.

// Message statuses as GetMessageStatus spells them.
const (
	StatusEnqueued             = "Enqueued"
	StatusDequeued             = "Dequeued"
	StatusAcked                = "Acked"
	StatusPreprocessing        = "Preprocessing"
	StatusProcessing           = "Processing"
	StatusProcessed            = "Processed"
	StatusProcessedWithErrors  = "ProcessedWithErrors"
	StatusPreProcessingError   = "PreProcessingError"
	StatusPostProcessingFailed = "PostProcessingFailed"
)

// Execution statuses as GetExecutionSummaryStatus spells them.
const (
	ExecUnknown            = "Unknown"
	ExecNotRun             = "NotRun"
	ExecExecuting          = "Executing"
	ExecSucceeded          = "Succeeded"
	ExecPartiallySucceeded = "PartiallySucceeded"
	ExecFailed             = "Failed"
	ExecCanceled           = "Canceled"
)

// Rule picks the Outcome of the messages (and package executions) it
// matches. Empty fields match anything; the latest matching rule wins.
// For package API executions, ActivityID matches the definition group,
// Entity any entity in the manifest, ExternalIDContains the package blob
// name and MessageID the execution ID.
type Rule struct {
	ActivityID, Entity, ExternalIDContains string
	MessageID                              string
	Outcome                                Outcome
}

// Outcome is how F&O ends an import.
type Outcome struct {
	// Status is the terminal message status: "Processed" (default),
	// "ProcessedWithErrors", "PreProcessingError" or "PostProcessingFailed".
	Status string
	// ExecutionStatus is GetExecutionSummaryStatus's terminal value
	// (Succeeded, PartiallySucceeded, Failed, Canceled, Unknown); derived
	// from Status when empty.
	ExecutionStatus string
	// Errors is what GetExecutionErrors returns once the execution ends.
	Errors []ExecutionError
	// StagingErrorFile, if set, is served at GetImportStagingErrorFileUrl.
	StagingErrorFile []byte
	// TargetErrorKeysFile, if set, makes GenerateImportTargetErrorKeysFile
	// answer true and is served at GetImportTargetErrorKeysFileUrl after
	// TargetKeysEmptyPolls empty answers.
	TargetErrorKeysFile  []byte
	TargetKeysEmptyPolls int
	// StagingErrorFiles and TargetErrorKeysFiles are the error files of
	// each entity of a package (by entity name, any case). An entity they
	// do not name gets StagingErrorFile and TargetErrorKeysFile.
	StagingErrorFiles    map[string][]byte
	TargetErrorKeysFiles map[string][]byte
	// NeverProcess keeps the message Enqueued for ever, as a wrong entity
	// name does. In an InOrder File job it blocks the messages behind it.
	NeverProcess bool
	// RunTicks keeps a package execution (import or export) Executing for
	// this many more Ticks before it ends, as a long export or import
	// runs for several batch runs; 0 ends it on the next Tick.
	RunTicks int
	// URLEmptyPolls: GetExportedPackageUrl answers "" this many more times
	// after the export has ended, as F&O does while it still writes the
	// package, before it answers the URL.
	URLEmptyPolls int
}

// ExecutionError is one row of GetExecutionErrors.
type ExecutionError struct {
	RecordId     string // spelled as in F&O's JSON
	Field        string
	ErrorMessage string
}

var derivedExec = map[string]string{
	StatusProcessed:            ExecSucceeded,
	StatusProcessedWithErrors:  ExecPartiallySucceeded,
	StatusPreProcessingError:   ExecFailed,
	StatusPostProcessingFailed: ExecFailed,
}

// Script adds a rule. It panics on an Outcome.Status that is not one of
// the four terminal statuses (a mistake in the test).
func (e *Emulator) Script(rule Rule) {
	if _, ok := derivedExec[rule.Outcome.Status]; !ok && rule.Outcome.Status != "" {
		panic(fmt.Sprintf("d365test: Script: Outcome.Status %q is not Processed, ProcessedWithErrors, PreProcessingError or PostProcessingFailed", rule.Outcome.Status))
	}
	o := rule.Outcome
	o.Errors = append([]ExecutionError(nil), o.Errors...)
	o.StagingErrorFile = cloneBytes(o.StagingErrorFile)
	o.TargetErrorKeysFile = cloneBytes(o.TargetErrorKeysFile)
	o.StagingErrorFiles, o.TargetErrorKeysFiles = cloneFiles(o.StagingErrorFiles), cloneFiles(o.TargetErrorKeysFiles)
	rule.Outcome = o
	e.mu.Lock()
	defer e.mu.Unlock()
	e.st.rules = append(e.st.rules, rule)
}

func cloneBytes(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte{}, b...)
}

func cloneFiles(m map[string][]byte) map[string][]byte {
	if m == nil {
		return nil
	}
	out := make(map[string][]byte, len(m))
	for k, v := range m {
		out[k] = cloneBytes(v)
	}
	return out
}

// entityFile is an entity's error file: its own, or the default.
func entityFile(files map[string][]byte, entity string, def []byte) []byte {
	for k, v := range files {
		if strings.EqualFold(k, entity) {
			return v
		}
	}
	return def
}

func normalizeOutcome(o Outcome) Outcome {
	if o.Status == "" {
		o.Status = StatusProcessed
	}
	if o.ExecutionStatus == "" {
		o.ExecutionStatus = derivedExec[o.Status]
	}
	return o
}

func (e *Emulator) outcomeForMessageLocked(m *message) Outcome {
	for i := len(e.st.rules) - 1; i >= 0; i-- {
		r := e.st.rules[i]
		if r.ActivityID != "" {
			if g, _ := normGUID(r.ActivityID); g != m.activityID {
				continue
			}
		}
		if r.Entity != "" && !strings.EqualFold(r.Entity, m.entity) {
			continue
		}
		if r.ExternalIDContains != "" && !strings.Contains(m.externalID, r.ExternalIDContains) {
			continue
		}
		if r.MessageID != "" && normID(r.MessageID) != m.id {
			continue
		}
		return normalizeOutcome(r.Outcome)
	}
	return normalizeOutcome(Outcome{})
}

func (e *Emulator) outcomeForExecLocked(x *execution) Outcome {
	for i := len(e.st.rules) - 1; i >= 0; i-- {
		r := e.st.rules[i]
		if r.ActivityID != "" && !strings.EqualFold(r.ActivityID, x.group) {
			continue
		}
		if r.Entity != "" && !containsFold(x.entities, r.Entity) {
			continue
		}
		if r.ExternalIDContains != "" && !strings.Contains(x.blobName, r.ExternalIDContains) {
			continue
		}
		if r.MessageID != "" && normID(r.MessageID) != normID(x.id) {
			continue
		}
		return normalizeOutcome(r.Outcome)
	}
	return normalizeOutcome(Outcome{})
}

func containsFold(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}

func terminalMessage(s string) bool {
	_, ok := derivedExec[s]
	return ok
}

func terminalExec(s string) bool { return s != ExecNotRun && s != ExecExecuting }

// Tick is one batch run: every in-flight message moves one step (for an
// InOrder File job, only the oldest unfinished one), every running package
// execution moves one step, and exports finish.
func (e *Emulator) Tick() { e.tick() }

// RunToCompletion ticks until nothing moves.
func (e *Emulator) RunToCompletion() {
	for i := 0; i < 100000 && e.tick(); i++ {
	}
}

func (e *Emulator) tick() bool {
	now := e.clock.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	moved := false
	busy := map[string]bool{} // in-order activities whose head message is unfinished
	for _, m := range e.st.messages {
		if terminalMessage(m.status) {
			continue
		}
		if a := e.st.activities[m.activityID]; a != nil && a.InOrder && a.Kind == File {
			if busy[a.id] {
				continue
			}
			busy[a.id] = true
		}
		if e.advanceMessageLocked(m, now) {
			moved = true
		}
	}
	for _, x := range e.st.execOrder {
		if x.kind != execMessage && e.advanceExecLocked(x, now) {
			moved = true
		}
	}
	return moved
}

func (e *Emulator) advanceMessageLocked(m *message, now time.Time) bool {
	o := e.outcomeForMessageLocked(m)
	switch m.status {
	case StatusEnqueued:
		if o.NeverProcess {
			return false
		}
		m.status, m.startedAt = StatusPreprocessing, now
	case StatusPreprocessing:
		name := "Import"
		if a := e.st.activities[m.activityID]; a != nil {
			name = a.Name
		}
		x := &execution{
			id: executionID(name, now), kind: execMessage, msg: m, legal: m.company,
			created: now, started: now, status: ExecExecuting,
		}
		if m.entity != "" {
			x.entities = []string{m.entity}
		}
		m.execID = x.id
		e.addExecutionLocked(x)
		if o.Status == StatusPreProcessingError {
			m.status, m.completedAt = o.Status, now
			x.status, x.outcome, x.completed = o.ExecutionStatus, &o, now
		} else {
			m.status = StatusProcessing
		}
	case StatusProcessing:
		m.status, m.completedAt = o.Status, now
		if x := e.executionLocked(m.execID); x != nil {
			x.status, x.outcome, x.completed = o.ExecutionStatus, &o, now
		}
	default:
		return false
	}
	return true
}

func (e *Emulator) advanceExecLocked(x *execution, now time.Time) bool {
	switch x.status {
	case ExecNotRun:
		if x.kind == execImport && !x.execute {
			return false // staged only: F&O waits for someone to run it
		}
		// F&O takes the lock when the import's batch job starts, not when
		// ImportFromPackage is called: one started while another runs fails.
		var other *execution
		if x.kind == execImport {
			other = e.executingImportLocked(x)
		}
		x.status, x.started = ExecExecuting, now
		if other != nil {
			// Not an HTTP error: the execution exists and ends Failed.
			x.status, x.completed = ExecFailed, now
			x.outcome = &Outcome{Status: StatusPreProcessingError, ExecutionStatus: ExecFailed, Errors: []ExecutionError{{
				ErrorMessage: fmt.Sprintf("Data project %s could not be imported: it is locked by execution %s (data project %s), which is still running. "+
					"Parallel jobs for the same entity cannot run at the same time.", x.group, other.id, other.group)}}}
		}
		return true
	case ExecExecuting:
		o := e.outcomeForExecLocked(x)
		if o.NeverProcess {
			return false
		}
		if x.runTicks < o.RunTicks {
			x.runTicks++
			return true
		}
		x.status, x.outcome, x.completed = o.ExecutionStatus, &o, now
		if x.kind == execExport && (x.status == ExecSucceeded || x.status == ExecPartiallySucceeded) {
			e.storeExportedPackageLocked(x)
		}
		return true
	}
	return false
}

// executingImportLocked is the package import running now that keeps x
// from running: one of the same data project or, unless
// Options.EnhancedParallelPackageImport, any.
func (e *Emulator) executingImportLocked(x *execution) *execution {
	for _, y := range e.st.execOrder {
		if y != x && y.kind == execImport && y.status == ExecExecuting &&
			(!e.opts.EnhancedParallelPackageImport || strings.EqualFold(y.group, x.group)) {
			return y
		}
	}
	return nil
}

// executionID makes a DMF-style execution ID: "<job>-<time>-<GUID>".
func executionID(job string, now time.Time) string {
	return fmt.Sprintf("%s-%s-%s", job, now.UTC().Format("2006-01-02_15-04-05"), strings.ToUpper(newGUID()))
}
