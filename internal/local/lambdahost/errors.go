package lambdahost

import (
	"encoding/json"
	"errors"
)

// Error types the host itself reports, named as AWS Lambda names them.
const (
	ErrorTypeTimeout          = "Sandbox.Timedout"
	ErrorTypeExit             = "Runtime.ExitError"
	ErrorTypeInvalidResponse  = "Runtime.InvalidResponsePayload"
	ErrorTypeResponseTooLarge = "Function.ResponseSizeTooLarge"
)

var (
	// ErrTimeout matches (errors.Is) a FunctionError for an invocation that
	// ran past its deadline. The host killed the process; the next invoke
	// starts a new one, as Lambda does.
	ErrTimeout = errors.New("lambdahost: task timed out")

	// ErrInit matches (errors.Is) a FunctionError raised during the init
	// phase: the runtime posted to /runtime/init/error, or the process
	// exited or hung before it asked for its first event.
	ErrInit = errors.New("lambdahost: init failed")

	// ErrClosed is returned by Invoke after Close.
	ErrClosed = errors.New("lambdahost: host closed")
)

// FunctionError is the error an invocation ended with, in the shape of the
// Lambda error document ({"errorType","errorMessage","stackTrace"}). It
// covers errors the handler returned, panics, and the host's own verdicts
// (timeout, runtime exit, oversized response, init failure).
type FunctionError struct {
	Type       string          `json:"errorType"`
	Message    string          `json:"errorMessage"`
	StackTrace json.RawMessage `json:"stackTrace,omitempty"`

	// Init reports that the error happened in the init phase, before the
	// runtime asked for an event.
	Init bool `json:"-"`
}

// Error implements error.
func (e *FunctionError) Error() string {
	if e.Type == "" {
		return e.Message
	}
	return e.Type + ": " + e.Message
}

// Is lets callers test for ErrTimeout and ErrInit with errors.Is.
func (e *FunctionError) Is(target error) bool {
	switch target {
	case ErrTimeout:
		return e.Type == ErrorTypeTimeout
	case ErrInit:
		return e.Init
	}
	return false
}

// document renders e as the Lambda error document.
func (e *FunctionError) document() []byte {
	b, err := json.Marshal(e)
	if err != nil { // cannot happen: StackTrace came from valid JSON
		return []byte(`{"errorType":"Runtime.SerializationError"}`)
	}
	return b
}

// parseErrorDocument reads an error document posted by a runtime. A body
// that is not a JSON error document becomes the message; the
// Lambda-Runtime-Function-Error-Type header fills a missing type.
func parseErrorDocument(body []byte, headerType string) *FunctionError {
	fe := &FunctionError{}
	if err := json.Unmarshal(body, fe); err != nil || (fe.Type == "" && fe.Message == "") {
		fe = &FunctionError{Message: string(body)}
	}
	if fe.Type == "" {
		fe.Type = headerType
	}
	if fe.Type == "" {
		fe.Type = "Unhandled"
	}
	return fe
}
