package d365test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
)

// writeJSON writes v the way F&O's .NET serializer does: no HTML escaping.
func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		http.Error(w, "d365test: encode: "+err.Error(), http.StatusInternalServerError)
		return
	}
	b := bytes.TrimRight(buf.Bytes(), "\n")
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	w.Write(b)
}

// marshalString is json.Marshal without HTML escaping, as a string.
func marshalString(v any) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic(err) // only plain data is marshalled here
	}
	return string(bytes.TrimRight(buf.Bytes(), "\n"))
}

// odataValue is an OData action's success body.
type odataValue struct {
	Context string `json:"@odata.context"`
	Value   any    `json:"value"`
}

func (e *Emulator) writeValue(w http.ResponseWriter, edmType string, v any) {
	w.Header().Set("OData-Version", "4.0")
	writeJSON(w, http.StatusOK, odataValue{Context: e.dataURL() + "/$metadata#" + edmType, Value: v})
}

// dataURL is where the OData endpoints are: <F&O>/data, or on-premises
// <F&O>/namespaces/AXSF/data.
func (e *Emulator) dataURL() string {
	if e.opts.OnPremises {
		return e.foURL + "/namespaces/" + OnPremisesNamespace + "/data"
	}
	return e.foURL + "/data"
}

// genericMessage is the top-level message of most F&O error answers; the
// cause is in innererror.message.
const genericMessage = "An error has occurred."

// errorStack is the stack trace F&O puts in innererror: it names F&O's
// request pipeline, never the cause.
const errorStack = "   at Microsoft.Dynamics.Platform.Integration.Services.OData.AxODataDelegatingHandler.SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)"

// writeODataError writes the OData error shape F&O uses. inner is
// innererror's message; "" repeats message.
func writeODataError(w http.ResponseWriter, status int, message, inner string) {
	if inner == "" {
		inner = message
	}
	w.Header().Set("OData-Version", "4.0")
	writeJSON(w, status, map[string]any{"error": map[string]any{
		"code":    "",
		"message": message,
		"innererror": map[string]any{
			"message":    inner,
			"type":       "Microsoft.Dynamics.Platform.Integration.Services.OData.AxODataException",
			"stacktrace": errorStack,
		},
	}})
}

// writeGenericError is F&O's usual error answer: the generic message on
// top, the cause only in innererror.message.
func writeGenericError(w http.ResponseWriter, status int, cause string) {
	writeODataError(w, status, genericMessage, cause)
}
