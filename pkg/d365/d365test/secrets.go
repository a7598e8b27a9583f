package d365test

// IssuedTokens returns every bearer token the Entra fake has issued, so a
// test can prove none of them reached a log or another host.
func (e *Emulator) IssuedTokens() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]string, 0, len(e.st.tokens))
	for t := range e.st.tokens {
		out = append(out, t)
	}
	return out
}

// TokenSecret returns the client secret the Entra fake issued token from;
// ok is false for a token it did not issue or one issued for a client
// assertion. Tests use it to tell tokens of an old and a new secret apart.
func (e *Emulator) TokenSecret(token string) (secret string, ok bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	t, ok := e.st.tokens[token]
	if !ok || t.secret == "" {
		return "", false
	}
	return t.secret, true
}
