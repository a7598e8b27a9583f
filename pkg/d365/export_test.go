package d365

import "context"

// AttachmentName exposes attachmentName to the external tests.
var AttachmentName = attachmentName

// StaticTokens is a TokenSource that always hands out the same token, for
// tests that never reach Entra ID.
type StaticTokens string

func (s StaticTokens) Token(context.Context) (string, error) { return string(s), nil }
