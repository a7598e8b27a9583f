package d365test

import "time"

// state is everything the emulator remembers, guarded by Emulator.mu.
type state struct {
	activities map[string]*activity // by canonical GUID
	apps       map[string]*App      // by client ID
	tokens     map[string]token
	grants     []TokenGrant

	rules    []Rule
	messages []*message
	msgByID  map[string]*message

	executions map[string]*execution // by normID(execution ID)
	execOrder  []*execution
	projects   map[string]bool   // data projects (definition groups), lowercased
	entities   map[string]string // lowercased -> as registered; empty: every entity exists
	exportPkgs map[string][]byte // definition group (lowercased) -> package to export

	exports  map[string]*export // by correlation ID
	queues   map[string][]*export
	ackOrder map[string][]string

	blobs  map[string]*blob
	staged map[string]map[string]stagedBlock // blob name -> block ID -> uncommitted block

	faults    []*faultState
	faultFunc FaultFunc
	requests  map[string]int
	faulted   map[string]int
	total     int

	blobSawToken, foreignSawToken bool
}

func newState() state {
	return state{
		activities: map[string]*activity{},
		apps:       map[string]*App{},
		tokens:     map[string]token{},
		msgByID:    map[string]*message{},
		executions: map[string]*execution{},
		projects:   map[string]bool{},
		entities:   map[string]string{},
		exportPkgs: map[string][]byte{},
		exports:    map[string]*export{},
		queues:     map[string][]*export{},
		ackOrder:   map[string][]string{},
		blobs:      map[string]*blob{},
		staged:     map[string]map[string]stagedBlock{},
		requests:   map[string]int{},
		faulted:    map[string]int{},
	}
}

// Kind is what a recurring job takes: a single file or a data package.
type Kind int

const (
	// File jobs take one data file per message; "process in order" applies.
	File Kind = iota
	// Package jobs take a data package zip per message.
	Package
)

func (k Kind) String() string {
	if k == Package {
		return "Package"
	}
	return "File"
}

// Activity is a recurring data job as F&O knows it.
type Activity struct {
	Name string
	Kind Kind
	// InOrder is the job's "Process messages in order": for File jobs only
	// the oldest unfinished message advances on each Tick.
	InOrder bool
	// AllowedApps is the job's authorization policy (client IDs). Empty
	// means the emulator's configured ClientID only.
	AllowedApps []string
}

type activity struct {
	id string
	Activity
}

// AddActivity registers (or replaces) a recurring job. id is a GUID, in any
// of the forms F&O accepts (braces, any case).
func (e *Emulator) AddActivity(id string, a Activity) {
	g, ok := normGUID(id)
	if !ok {
		panic("d365test: AddActivity: activity ID " + id + " is not a GUID")
	}
	if len(a.AllowedApps) == 0 {
		a.AllowedApps = []string{e.opts.ClientID}
	} else {
		a.AllowedApps = append([]string(nil), a.AllowedApps...)
	}
	if a.Name == "" {
		a.Name = "Job-" + g[:8]
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.st.activities[g] = &activity{id: g, Activity: a}
}

// App is an Entra application registration.
type App struct {
	ClientID, ClientSecret string
	// NotInFO means Entra knows the app but F&O's "Microsoft Entra
	// applications" page does not: tokens are issued, and every F&O call
	// with them is 401.
	NotInFO bool
	// SecretExpired: the secret is still the app's but has expired: Entra
	// answers invalid_client with AADSTS7000222.
	SecretExpired bool
	// Disabled: the app is disabled in the tenant (AADSTS7000112).
	Disabled bool
	// OtherSecrets are accepted besides ClientSecret, as while a secret is
	// rotated (AddClientSecret); SetClientSecret clears them. They do not
	// expire.
	OtherSecrets []string
}

// AddApp registers another Entra app (for example one that is not on an
// activity's AllowedApps).
func (e *Emulator) AddApp(a App) {
	e.mu.Lock()
	defer e.mu.Unlock()
	c := a
	e.st.apps[a.ClientID] = &c
}

// AddEntity registers an entity name that exists in "the target
// environment". Once any is registered, ImportFromPackage rejects manifests
// naming others; with none registered, every entity exists.
func (e *Emulator) AddEntity(name string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.st.entities[lower(name)] = name
}

// AddProject registers an existing data project (definition group), so an
// ImportFromPackage into it without overwrite fails as in F&O.
func (e *Emulator) AddProject(name string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.st.projects[lower(name)] = true
}

// SetExportPackage sets the zip that ExportToPackage of definitionGroupID
// produces. Without it a small valid package is generated.
func (e *Emulator) SetExportPackage(definitionGroupID string, zip []byte) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.st.exportPkgs[lower(definitionGroupID)] = append([]byte(nil), zip...)
}

// message is an enqueued import message.
type message struct {
	seq                                         int
	id, activityID, entity, company, externalID string
	size                                        int64
	sha256                                      string
	body                                        []byte
	status                                      string
	execID                                      string
	enqueuedAt, startedAt, completedAt          time.Time
}

// Message is a snapshot of an enqueued import message.
type Message struct {
	ID, ActivityID, Entity, Company, ExternalID string
	Size                                        int64
	SHA256                                      string // hex
	Body                                        []byte // the first KeepEnqueuedBodyBytes
	Status                                      string
	ExecutionID                                 string // "" until processing starts
	EnqueuedAt                                  time.Time
}

// Messages returns every enqueued message in enqueue order.
func (e *Emulator) Messages() []Message {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]Message, 0, len(e.st.messages))
	for _, m := range e.st.messages {
		out = append(out, Message{
			ID: m.id, ActivityID: m.activityID, Entity: m.entity, Company: m.company,
			ExternalID: m.externalID, Size: m.size, SHA256: m.sha256,
			Body: append([]byte(nil), m.body...), Status: m.status, ExecutionID: m.execID,
			EnqueuedAt: m.enqueuedAt,
		})
	}
	return out
}

// execKind says where an execution came from.
type execKind int

const (
	execMessage execKind = iota // a recurring-integration message
	execImport                  // ImportFromPackage
	execExport                  // ExportToPackage
)

// execution is a DMF execution (job history entry).
type execution struct {
	id        string
	kind      execKind
	msg       *message // execMessage
	group     string   // definition group (package API)
	entities  []string // entity names in the package, or the message's entity
	legal     string
	blobName  string // imported package blob, or exported package blob
	packageNm string // ExportToPackage packageName
	execute   bool
	status    string // NotRun, Executing, or terminal
	outcome   *Outcome
	created   time.Time
	started   time.Time
	completed time.Time

	targetKeysRequested bool
	targetKeysPolls     int
	runTicks            int // Ticks spent Executing (Outcome.RunTicks)
	urlPolls            int // empty GetExportedPackageUrl answers given (Outcome.URLEmptyPolls)
}

// Execution is a snapshot of a DMF execution.
type Execution struct {
	ID                string
	MessageID         string   // for recurring-integration messages
	DefinitionGroupID string   // for package API executions
	Entities          []string // from the manifest, or the message's entity
	LegalEntityID     string
	Status            string // GetExecutionSummaryStatus's value
	Execute           bool   // ImportFromPackage's execute flag
	PackageBlob       string // blob name of the imported or exported package
}

// Executions returns every execution in creation order.
func (e *Emulator) Executions() []Execution {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]Execution, 0, len(e.st.execOrder))
	for _, x := range e.st.execOrder {
		s := Execution{
			ID: x.id, DefinitionGroupID: x.group, Entities: append([]string(nil), x.entities...),
			LegalEntityID: x.legal, Status: x.status, Execute: x.execute, PackageBlob: x.blobName,
		}
		if x.msg != nil {
			s.MessageID = x.msg.id
		}
		out = append(out, s)
	}
	return out
}

func (e *Emulator) addExecutionLocked(x *execution) {
	e.st.executions[normID(x.id)] = x
	e.st.execOrder = append(e.st.execOrder, x)
}

func (e *Emulator) executionLocked(id string) *execution { return e.st.executions[normID(id)] }
