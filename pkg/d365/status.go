package d365

import (
	"context"
	"fmt"
	"strings"
)

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

// ParseMessageStatus maps any casing, and the spellings of RIS's enum
// (PostProcessingError), onto the documented constants. Unknown values are
// kept as sent, and are not terminal.
func ParseMessageStatus(s string) MessageStatus {
	t := strings.TrimSpace(s)
	for _, k := range []MessageStatus{StatusEnqueued, StatusDequeued, StatusAcked, StatusPreprocessing,
		StatusProcessing, StatusProcessed, StatusPreProcessingError, StatusProcessedWithErrors, StatusPostProcessingFailed} {
		if strings.EqualFold(t, string(k)) {
			return k
		}
	}
	if strings.EqualFold(t, "PostProcessingError") {
		return StatusPostProcessingFailed
	}
	return MessageStatus(t)
}

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

// ParseExecutionStatus maps any casing onto the documented constants;
// unknown values are kept as sent.
func ParseExecutionStatus(s string) ExecutionStatus {
	t := strings.TrimSpace(s)
	for _, k := range []ExecutionStatus{ExecUnknown, ExecNotRun, ExecExecuting, ExecSucceeded,
		ExecPartiallySucceeded, ExecFailed, ExecCanceled} {
		if strings.EqualFold(t, string(k)) {
			return k
		}
	}
	return ExecutionStatus(t)
}

// Terminal reports whether the execution has finished. As in Microsoft's
// own scheduler (RIS), NotRun and Executing mean "keep polling", as do the
// values clients have met while work was pending ("Queued", "Bad request");
// every other value, Unknown included, is final.
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
	s, err := c.stringAction(ctx, "GetMessageStatus", map[string]string{"messageId": messageID}, retrySafe)
	if err != nil {
		return "", err
	}
	return ParseMessageStatus(s), nil
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
	s, err := c.stringAction(ctx, "GetExecutionSummaryStatus", map[string]string{"executionId": executionID}, retrySafe)
	if err != nil {
		return "", err
	}
	return ParseExecutionStatus(s), nil
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
