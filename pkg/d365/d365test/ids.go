package d365test

import (
	"crypto/rand"
	"fmt"
	"regexp"
	"strings"
)

// emptyGUID is what F&O answers for an execution that has not started.
const emptyGUID = "00000000-0000-0000-0000-000000000000"

// newGUID returns a random (version 4) GUID in lowercase, without braces.
func newGUID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

var guidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// normGUID accepts the forms F&O accepts for an ID in a path or body
// (braces or none, any case) and returns the canonical lowercase form. ok
// is false when s is not a GUID.
func normGUID(s string) (string, bool) {
	t := strings.ToLower(strings.TrimSpace(s))
	if strings.HasPrefix(t, "{") && strings.HasSuffix(t, "}") {
		t = t[1 : len(t)-1]
	}
	return t, guidRE.MatchString(t)
}

// normID is normGUID for IDs that need not be GUIDs (execution IDs made by
// clients): GUIDs are canonicalised, anything else is kept as is.
func normID(s string) string {
	if g, ok := normGUID(s); ok {
		return g
	}
	return strings.TrimSpace(s)
}

func lower(s string) string { return strings.ToLower(strings.TrimSpace(s)) }
