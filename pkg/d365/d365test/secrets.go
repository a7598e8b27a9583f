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
