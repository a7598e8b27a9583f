package d365test

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// AnswerShape is the shape of an enqueue answer: F&O's own, the other
// forms a client may meet for a message ID, and the pages a gateway or a
// sign-in front door answers with status 200.
type AnswerShape string

// The enqueue answer shapes. Those that carry an ID carry the message's.
const (
	// AnswerJSONString: "<guid>" as application/json, F&O's answer (the default).
	AnswerJSONString AnswerShape = "json"
	// AnswerBareGUID: <guid> without quotes, as application/json.
	AnswerBareGUID AnswerShape = "bare"
	// AnswerBracedGUID: {<GUID>} in upper case, as application/json.
	AnswerBracedGUID AnswerShape = "braced"
	// AnswerWrapped: {"@odata.context":"...#Edm.String","value":"<guid>"}.
	AnswerWrapped AnswerShape = "wrapped"
	// AnswerHTML: a sign-in page as text/html, with no GUID in it.
	AnswerHTML AnswerShape = "html"
	// AnswerSessionExpired: a front door's text/html page "Session expired.
	// Request Id: <guid>", the GUID being the front door's request ID.
	AnswerSessionExpired AnswerShape = "session-expired"
	// AnswerPlainText: a sentence holding the message ID, as text/plain.
	AnswerPlainText AnswerShape = "text"
	// AnswerEmpty: an empty body.
	AnswerEmpty AnswerShape = "empty"
)

// AnswerShapes lists every shape, F&O's first.
var AnswerShapes = []AnswerShape{AnswerJSONString, AnswerBareGUID, AnswerBracedGUID, AnswerWrapped,
	AnswerHTML, AnswerSessionExpired, AnswerPlainText, AnswerEmpty}

// ParseAnswerShape reads a shape's name (as in the constants).
func ParseAnswerShape(s string) (AnswerShape, error) {
	for _, a := range AnswerShapes {
		if strings.EqualFold(strings.TrimSpace(s), string(a)) {
			return a, nil
		}
	}
	names := make([]string, len(AnswerShapes))
	for i, a := range AnswerShapes {
		names[i] = string(a)
	}
	return "", fmt.Errorf("d365test: unknown enqueue answer shape %q (want one of %s)", s, strings.Join(names, ", "))
}

// CarriesID reports whether a client should read a message ID from the
// shape: only F&O's own forms carry one it can vouch for.
func (a AnswerShape) CarriesID() bool {
	switch a {
	case "", AnswerJSONString, AnswerBareGUID, AnswerBracedGUID, AnswerWrapped:
		return true
	}
	return false
}

// signInPage is what a sign-in front door answers instead of the API.
const signInPage = `<!DOCTYPE html>
<html><head><title>Sign in to your account</title></head>
<body><form method="post" action="/common/login"><p>Sign in to continue to Finance and Operations.</p></form></body></html>
`

// writeEnqueueAnswer answers an enqueue of message id in the given shape.
func (e *Emulator) writeEnqueueAnswer(w http.ResponseWriter, status int, shape AnswerShape, id string) {
	ct, body := "application/json; charset=utf-8", ""
	switch shape {
	case AnswerBareGUID:
		body = id
	case AnswerBracedGUID:
		body = "{" + strings.ToUpper(id) + "}"
	case AnswerWrapped:
		body = marshalString(odataValue{Context: e.foURL + "/data/$metadata#Edm.String", Value: id})
	case AnswerHTML:
		ct, body = "text/html; charset=utf-8", signInPage
	case AnswerSessionExpired:
		ct = "text/html; charset=utf-8"
		body = "<html><head><title>Session expired</title></head><body><h1>Session expired.</h1><p>Request Id: " + newGUID() + "</p></body></html>\n"
	case AnswerPlainText:
		ct, body = "text/plain; charset=utf-8", "Message "+id+" was queued for import.\n"
	case AnswerEmpty:
	default: // AnswerJSONString
		body = marshalString(id)
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	io.WriteString(w, body)
}
