package d365

import (
	"context"
	"fmt"
	"strings"
)

// enum is the closed set of values F&O sends for one kind of status: the
// documented spellings, plus other spellings it also uses, each standing for
// a documented value.
type enum[T ~string] struct {
	values  []T
	aliases map[string]T
}

// parse maps s, in any casing and with surrounding space, onto a documented
// value. A value not in the set is kept as sent (trimmed).
func (e enum[T]) parse(s string) T {
	t := strings.TrimSpace(s)
	for _, v := range e.values {
		if strings.EqualFold(t, string(v)) {
			return v
		}
	}
	for alias, v := range e.aliases {
		if strings.EqualFold(t, alias) {
			return v
		}
	}
	return T(t)
}

// statusAction calls an action whose value is a status string and parses it.
func statusAction[T ~string](ctx context.Context, c *Client, name string, body any, parse func(string) T) (T, error) {
	s, err := c.stringAction(ctx, name, body, retrySafe)
	if err != nil {
		return "", err
	}
	return parse(s), nil
}

// MessageStatus is what GetMessageStatus says of an enqueued message.
type MessageStatus string

// The statuses F&O documents, spelled as it sends them.
const (
	StatusEnqueued             MessageStatus = "Enqueued"
	StatusDequeued             MessageStatus = "Dequeued"
	StatusAcked                MessageStatus = "Acked"
	StatusPreprocessing        MessageStatus = "Preprocessing"
	StatusProcessing           MessageStatus = "Processing"
	StatusProcessed            MessageStatus = "Processed"
	StatusPreProcessingError   MessageStatus = "PreProcessingError"
	StatusProcessedWithErrors  MessageStatus = "ProcessedWithErrors"
	StatusPostProcessingFailed MessageStatus = "PostProcessingFailed"
)

var messageStatuses = enum[MessageStatus]{
	values: []MessageStatus{StatusEnqueued, StatusDequeued, StatusAcked, StatusPreprocessing, StatusProcessing,
		StatusProcessed, StatusPreProcessingError, StatusProcessedWithErrors, StatusPostProcessingFailed},
	// The spelling of the same status in Microsoft's Recurring Integrations
	// Scheduler.
	aliases: map[string]MessageStatus{"PostProcessingError": StatusPostProcessingFailed},
}

// ParseMessageStatus maps any casing, and the spelling PostProcessingError,
// onto the documented constants. Unknown values are kept as sent, and are
// not terminal.
func ParseMessageStatus(s string) MessageStatus { return messageStatuses.parse(s) }

// Terminal reports whether F&O is done with the message.
func (s MessageStatus) Terminal() bool {
	switch s {
	case StatusProcessed, StatusPreProcessingError, StatusProcessedWithErrors, StatusPostProcessingFailed:
		return true
	}
	return false
}

// Succeeded reports whether the message was imported without errors.
func (s MessageStatus) Succeeded() bool { return s == StatusProcessed }

// ExecutionStatus is what GetExecutionSummaryStatus says of an execution.
type ExecutionStatus string

// The documented execution statuses.
const (
	ExecUnknown            ExecutionStatus = "Unknown"
	ExecNotRun             ExecutionStatus = "NotRun"
	ExecExecuting          ExecutionStatus = "Executing"
	ExecSucceeded          ExecutionStatus = "Succeeded"
	ExecPartiallySucceeded ExecutionStatus = "PartiallySucceeded"
	ExecFailed             ExecutionStatus = "Failed"
	ExecCanceled           ExecutionStatus = "Canceled"
)

var executionStatuses = enum[ExecutionStatus]{
	values: []ExecutionStatus{ExecUnknown, ExecNotRun, ExecExecuting, ExecSucceeded,
		ExecPartiallySucceeded, ExecFailed, ExecCanceled},
}

// ParseExecutionStatus maps any casing onto the documented constants;
// unknown values are kept as sent.
func ParseExecutionStatus(s string) ExecutionStatus { return executionStatuses.parse(s) }

// Terminal reports whether the execution has finished. As in Microsoft's
// Recurring Integrations Scheduler, NotRun and Executing mean "keep
// polling", as do the values clients have met while work was pending
// ("Queued", "Bad request"); every other value, Unknown included, is final.
func (s ExecutionStatus) Terminal() bool {
	switch strings.ToLower(string(s)) {
	case "", "notrun", "executing", "queued", "bad request":
		return false
	}
	return true
}

// Succeeded reports whether every record was imported.
func (s ExecutionStatus) Succeeded() bool { return s == ExecSucceeded }

// emptyGUID is what GetExecutionIdByMessageId answers before the batch has
// picked the message up.
const emptyGUID = "00000000-0000-0000-0000-000000000000"

// GetMessageStatus calls the GetMessageStatus action for an enqueue message ID.
func (c *Client) GetMessageStatus(ctx context.Context, messageID string) (MessageStatus, error) {
	return statusAction(ctx, c, "GetMessageStatus", map[string]string{"messageId": messageID}, ParseMessageStatus)
}

// GetExecutionIDByMessageID calls GetExecutionIdByMessageId (whose parameter
// really is "_messageId"). It returns "" while F&O has not started the
// execution (it answers the empty GUID then).
func (c *Client) GetExecutionIDByMessageID(ctx context.Context, messageID string) (string, error) {
	s, err := c.stringAction(ctx, "GetExecutionIdByMessageId", map[string]string{"_messageId": messageID}, retrySafe)
	if err != nil {
		return "", err
	}
	s = strings.TrimSpace(s)
	if strings.Trim(s, "{}") == emptyGUID {
		return "", nil
	}
	return s, nil
}

// GetExecutionSummaryStatus calls GetExecutionSummaryStatus. Until the
// execution exists F&O answers 400 "... were not found": that comes back as
// an error matching ErrExecutionNotFound.
func (c *Client) GetExecutionSummaryStatus(ctx context.Context, executionID string) (ExecutionStatus, error) {
	return statusAction(ctx, c, "GetExecutionSummaryStatus", map[string]string{"executionId": executionID}, ParseExecutionStatus)
}

type errorFileArgs struct {
	ExecutionID string `json:"executionId"`
	EntityName  string `json:"entityName"`
}

// GetImportStagingErrorFileURL returns the URL of the staging error file of
// an entity in an execution, or "" when there is none. The URL is a blob SAS
// URL: fetch it with FetchBlob, without the bearer token.
func (c *Client) GetImportStagingErrorFileURL(ctx context.Context, executionID, entity string) (string, error) {
	return c.urlAction(ctx, "GetImportStagingErrorFileUrl", errorFileArgs{executionID, entity}, retrySafe)
}

// GenerateImportTargetErrorKeysFile asks F&O to build the target error keys
// file; poll GetImportTargetErrorKeysFileURL afterwards. It reports whether
// there are errors to put in one.
func (c *Client) GenerateImportTargetErrorKeysFile(ctx context.Context, executionID, entity string) (bool, error) {
	v, _, err := c.action(ctx, "GenerateImportTargetErrorKeysFile", errorFileArgs{executionID, entity}, retrySafe)
	if err != nil {
		return false, err
	}
	b, err := boolValue(v)
	if err != nil {
		return false, fmt.Errorf("d365 GenerateImportTargetErrorKeysFile: %w", err)
	}
	return b, nil
}

// GetImportTargetErrorKeysFileURL returns the target error keys file's URL,
// or "" while it is still being generated.
func (c *Client) GetImportTargetErrorKeysFileURL(ctx context.Context, executionID, entity string) (string, error) {
	return c.urlAction(ctx, "GetImportTargetErrorKeysFileUrl", errorFileArgs{executionID, entity}, retrySafe)
}
