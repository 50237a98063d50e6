// Package excerpt shortens text that an error message or an answer quotes
// back (an id from a URL, a Host header, a body from a server), so that
// what someone else sent cannot make a message as long as they like. It sits
// below lookup, admin and ship/setup, which all quote such text.
package excerpt

// Clip returns s cut to its first n bytes, with "..." when it was longer.
func Clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
