package d365

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
)

// actionPath is where every DataManagementDefinitionGroups action lives.
const actionPath = "/data/DataManagementDefinitionGroups/Microsoft.Dynamics.DataEntities."

// maxActionAnswer bounds an OData answer read into memory (execution errors
// of a large import can be megabytes).
const maxActionAnswer = 64 << 20

// action posts body to an OData action and returns the raw "value" of its
// answer, which F&O wraps as {"@odata.context":...,"value":...}.
func (c *Client) action(ctx context.Context, name string, body any, mode retryMode) (json.RawMessage, []byte, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return nil, nil, fmt.Errorf("d365 %s: %w", name, err)
	}
	resp, err := c.send(ctx, request{
		op: name, method: http.MethodPost, auth: true, mode: mode,
		url:    c.endpoint(c.odata+actionPath+name, nil),
		header: http.Header{"Content-Type": {"application/json"}, "Accept": {"application/json"}},
		body:   bytesBody(b),
	})
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxActionAnswer+1))
	if err != nil {
		if mode == retryUnsent { // F&O may have acted on it: say what came back
			return nil, nil, unexpectedAnswer(name, resp, raw, "the answer was cut off", err)
		}
		return nil, nil, fmt.Errorf("d365 %s: read answer: %w", name, err)
	}
	if len(raw) > maxActionAnswer {
		return nil, nil, fmt.Errorf("d365 %s: the answer is larger than %d MiB", name, maxActionAnswer>>20)
	}
	v, err := decodeValue(raw)
	if err != nil {
		if mode == retryUnsent {
			return nil, raw, unexpectedAnswer(name, resp, raw, "it is not an OData value", nil)
		}
		return nil, raw, fmt.Errorf("d365 %s: %w", name, err)
	}
	return v, raw, nil
}

// decodeValue extracts "value" from an OData answer.
func decodeValue(raw []byte) (json.RawMessage, error) {
	var w struct {
		Value json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(raw, &w); err != nil {
		return nil, fmt.Errorf("answer is not JSON: %w (%s)", err, snippet(raw, 200))
	}
	if len(w.Value) == 0 {
		return nil, fmt.Errorf("answer has no value: %s", snippet(raw, 200))
	}
	return w.Value, nil
}

// maxValueNesting is how many {"value":...} layers stringValue unwraps
// inside an answer's value. The docs show one ({"value":{"value":id}} for
// ExportToPackage); a few more are tolerated. Each layer re-parses the rest
// of the answer, so the bound keeps a deeply nested answer cheap.
const maxValueNesting = 4

// stringValue reads a value that should be a string. A nested
// {"value":"..."} (as the docs show for ExportToPackage) and null are
// tolerated; null reads as "".
func stringValue(v json.RawMessage) (string, error) {
	return nestedStringValue(v, 0)
}

func nestedStringValue(v json.RawMessage, depth int) (string, error) {
	v = bytes.TrimSpace(v)
	switch {
	case bytes.Equal(v, []byte("null")):
		return "", nil
	case len(v) > 0 && v[0] == '{':
		if depth >= maxValueNesting {
			return "", fmt.Errorf("value is nested more than %d levels deep", maxValueNesting)
		}
		inner, err := decodeValue(v)
		if err != nil {
			return "", err
		}
		return nestedStringValue(inner, depth+1)
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return "", fmt.Errorf("value %s is not a string", snippet(v, 100))
	}
	return s, nil
}

// boolValue reads an Edm.Boolean value; "true"/"false" strings are tolerated.
func boolValue(v json.RawMessage) (bool, error) {
	var b bool
	if err := json.Unmarshal(v, &b); err == nil {
		return b, nil
	}
	s, err := stringValue(v)
	if err != nil {
		return false, err
	}
	switch s {
	case "true", "True", "TRUE":
		return true, nil
	case "false", "False", "FALSE", "":
		return false, nil
	}
	return false, fmt.Errorf("value %q is not a Boolean", s)
}

func (c *Client) stringAction(ctx context.Context, name string, body any, mode retryMode) (string, error) {
	v, _, err := c.action(ctx, name, body, mode)
	if err != nil {
		return "", err
	}
	s, err := stringValue(v)
	if err != nil {
		return "", fmt.Errorf("d365 %s: %w", name, err)
	}
	return s, nil
}

// urlAction is stringAction for the actions whose value is a blob URL: its
// SAS signature is the credential to the blob, so an answer that cannot be
// read is reported by its size only, never echoed into an error (and from
// there into logs and result documents).
func (c *Client) urlAction(ctx context.Context, name string, body any, mode retryMode) (string, error) {
	v, raw, err := c.action(ctx, name, body, mode)
	if err != nil {
		if raw != nil { // a 2xx answer that is not an OData value
			return "", redactedAnswer(name, len(raw))
		}
		return "", err
	}
	s, err := stringValue(v)
	if err != nil {
		return "", fmt.Errorf("d365 %s: the value is not a URL string (%d bytes, not shown: it may hold a SAS signature)", name, len(v))
	}
	return s, nil
}

func redactedAnswer(name string, n int) error {
	return fmt.Errorf("d365 %s: the answer is not an OData value (%d bytes, not shown: it may hold a SAS signature)", name, n)
}
