// Package d365test is an in-process emulator of Dynamics 365 Finance &
// Operations (F&O) recurring integrations, the Data management package API,
// the Azure blob storage that API hands out, and the Microsoft Entra ID token
// endpoint, for tests (in the manner of net/http/httptest) and for local
// runs (cmd/d365emu). Where Microsoft does not document what the real
// service does, the emulator makes a choice (listed below) or offers an
// Options knob.
//
// # Listeners
//
// New starts four TLS listeners on 127.0.0.1, all serving one certificate
// signed by a per-emulator CA (CertPEM, HTTPClient):
//
//   - F&O (URL): /api/connector/..., /data/...; every route needs a bearer token.
//   - Entra ID (AuthorityURL): openid-configuration, v2 and v1 token
//     endpoints; and, under /adfs (ADFSAuthorityURL), AD FS's, which
//     on-premises environments sign in with.
//   - Blob storage (BlobURL): SAS-signed PUT (Put Blob, Put Block, Put
//     Block List) and GET under /dmf/, no bearer token. Its host is not
//     F&O's (another port), as Azure storage's is not.
//   - A "foreign" host (https://localhost:PORT) that a ForeignDownloadHost
//     fault points DownloadLocation at; it records any Authorization header.
//
// # Time
//
// A fake clock (Now, Advance) drives dequeue visibility, LastDequeueDateTime,
// SAS expiry and token expiry. Advancing past TokenLifetime makes F&O answer
// 401 although the client's token cache, which runs on real time, still
// holds the token. Only Fault.Delay waits on the wall clock.
//
// # Endpoint names
//
// Requests, Faulted and Fault.Endpoint name endpoints: "token",
// "openid-configuration", "instance-discovery", "entra-other" (Entra);
// "enqueue", "dequeue", "download", "ack", "jobstatus", each OData action by
// name (e.g. "GetMessageStatus"), and "unknown" for other paths (F&O);
// "blob-put", "blob-put-block", "blob-put-block-list", "blob-get",
// "blob-other" (blob); "foreign-download",
// "foreign-other" (the foreign host).
//
// # Choices where Microsoft does not document the real service
//
//   - Unknown activity: 404 (Options.UnknownActivityStatus). App not allowed
//     on the activity: 401 (403 with Options.Unauthorized403).
//   - Connector errors (unknown activity, app not allowed, unknown file,
//     stale ack) answer F&O's OData error body: the generic message "An
//     error has occurred." with the cause in innererror.message. A Fault
//     with Status and Cause gives that body on any F&O endpoint.
//   - Enqueue answers a quoted JSON string holding the message ID.
//     Options.EnqueueAnswer or Fault.EnqueueAnswer answer another shape
//     (AnswerShape: bare, braced, wrapped, a sign-in or "Session expired"
//     page with status 200, plain text, empty).
//   - Entra ID refuses a wrong secret with AADSTS7000215 (SetClientSecret
//     rotates it), an expired one with AADSTS7000222 (ExpireClientSecret),
//     an unknown app with AADSTS700016, a disabled one (App.Disabled) with
//     AADSTS7000112; Fault.AADSTS answers any code on the token endpoint.
//   - AddClientSecret gives the app a second valid secret, as while a
//     secret is rotated; SetClientSecret leaves one. Tokens stay valid
//     until they expire when their secret is removed or expires, as in
//     Entra ID; Options.RevokeTokensWithSecret makes F&O answer 401 to
//     them instead (TokenSecret tells which secret a token came from).
//   - Stale or unknown ack: 400 (Options.StaleAckStatus); body empty on 200.
//     Re-acking an already acked message with its latest receipt is 200 and
//     changes nothing.
//   - GetMessageStatus of an unknown ID: 200 with value "Unknown"
//     (Options.UnknownMessageStatus changes the value; Options.UnknownMessageHTTPStatus
//     answers an OData error instead).
//   - Message IDs, correlation IDs: lowercase GUIDs without braces.
//     BlobId: uppercase GUID in braces, as in the docs.
//   - LastDequeueDateTime: .NET style "2006-01-02T15:04:05" in UTC, the time
//     of the previous dequeue; null on the first.
//   - The execution ID is assigned when the message leaves Preprocessing: on
//     entering Processing, or on PreProcessingError (whose execution ends
//     Failed so that scripted errors stay reachable).
//   - Execution status derived from the message status: Processed→Succeeded,
//     ProcessedWithErrors→PartiallySucceeded, PreProcessingError and
//     PostProcessingFailed→Failed.
//   - Execution-ID actions (GetExecutionSummaryStatus, GetExecutionErrors,
//     error-file actions, GetExportedPackageUrl,
//     GetEntityExecutionSummaryStatusList) answer 400 "... were not found"
//     for an execution that does not exist yet.
//   - GenerateImportTargetErrorKeysFile answers true when the execution has a
//     target error keys file (the scripted Outcome.TargetErrorKeysFile), else
//     false; GetImportTargetErrorKeysFileUrl answers "" until Generate was
//     called, then "" TargetKeysEmptyPolls more times, then the URL.
//   - GetEntityExecutionSummaryStatusList: value is a JSON array (context
//     #Collection(...)) of the objects jobstatus puts in ExecutionDetail:
//     {EntityName, Company, ExecutionStatus, StagingRecords, StagingStatus,
//     StagingErrorCount, TargetRecords, TargetStatus, TargetErrorCount,
//     ExecutionStartedDateTime, ExecutionCompletedDateTime}.
//   - jobstatus for an unknown jobId: 200 with "DataJobStatus": null.
//     DataJobState is 4 (InProcess) for both Preprocessing and Processing.
//   - GetMessageStatus also knows export correlation IDs: Enqueued until
//     dequeued, then Dequeued, then Acked.
//   - Dequeue with a NullDownloadLocation or FileMissing fault still hides
//     the message and issues a PopReceipt, so it can be acked.
//   - A package import starts NotRun; with execute=true a Tick makes it
//     Executing and the next one terminal; with execute=false it stays
//     NotRun. An export is Executing until the next Tick. Outcome.RunTicks
//     keeps either Executing for more Ticks (a long run).
//   - An export (ExportToPackage and its variants) ends as the Rule whose
//     ActivityID names its definition group says: Succeeded (the default)
//     or PartiallySucceeded store the package, Failed or Canceled store
//     none; the rule's Errors are GetExecutionErrors' rows. Until the
//     package is stored GetExportedPackageUrl answers "", and
//     Outcome.URLEmptyPolls more times after, then a SAS URL for reading.
//   - Blobs are deleted after Options.BlobRetention (7 days, as F&O does):
//     a GET of an older blob is 404 BlobNotFound, even with a fresh SAS.
//   - ImportFromPackage reads the package through its SAS, so the URL must
//     be one GetAzureWriteUrl issued, still valid, and uploaded. A package
//     import into a definition group that exists (AddProject, or any earlier
//     import) needs overwrite=true.
//   - OData action parameters are checked as OData does: an unknown
//     parameter name is a 400 (so {"messageId"} on GetExecutionIdByMessageId
//     fails), and required ones must be present.
//   - Blob PUT needs Content-Length (411 without), as Azure's Put Blob does.
//     Put Block stages a block (on disk) under a base64 ID of at most 64
//     bytes, all IDs of one blob the same length; Put Block List makes the
//     Latest/Uncommitted blocks it names, in its order, the blob, and the
//     blob does not exist (or keeps its old content) until then. A SAS
//     that is expired or not signed by the emulator is 403
//     AuthenticationFailed with Azure's XML error body, on every blob
//     request.
//   - A package import (ImportFromPackage with execute=true) into a data
//     project that starts while another package import is executing (any
//     data project; the same one with Options.EnhancedParallelPackageImport)
//     is accepted like any other, and its execution ends Failed on its
//     first Tick, with one
//     GetExecutionErrors row saying it was locked by the other execution
//     ("Parallel jobs for the same entity cannot run at the same time").
//     F&O's exact wording is not documented.
//   - Outcome.StagingErrorFiles and TargetErrorKeysFiles give each entity of
//     a package its own error files.
//   - Execution IDs the emulator makes look like those of Microsoft's
//     Recurring Integrations Scheduler:
//     "<job or definition group name>-<yyyy-MM-dd_HH-mm-ss>-<GUID>" (they can
//     hold spaces; clients must treat them as opaque).
//   - GetExecutionErrors answers "[]" until the execution has ended.
//   - AD FS (ADFSAuthorityURL) issues tokens for the client-credentials
//     grant to the same apps as Entra ID, with a scope of "<F&O URL>/.default"
//     (as MSAL asks) or a resource of the F&O URL; it answers token_type
//     "bearer" in lower case, an issuer of https://HOST/adfs and an
//     access_token_issuer of http://HOST/adfs/services/trust, as AD FS
//     does. Refusals are OAuth errors without error_codes: MSIS9607 for an
//     unknown client, MSIS9622 for a wrong secret or assertion, MSIS9605
//     for a resource it does not know (other wording is the emulator's).
//   - Options.OnPremises: the OData endpoints answer only under
//     /namespaces/AXSF/data/... (anything else is 404 to an authenticated
//     caller), @odata.context names that path, and every
//     /api/connector/... request answers 302 to AD FS's sign-in page,
//     before authentication, as an on-premises environment without
//     recurring integrations does.
package d365test
