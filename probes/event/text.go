package event

import (
	"strings"
	"unicode/utf8"
)

// ValidUTF8 returns s when it is valid UTF-8, else s with each byte that
// does not begin a valid encoding replaced by U+FFFD (as converting it to
// []rune would). Strings from a target (paths, methods, its environment)
// are bytes the target chose; every consumer downstream — OTLP, whose
// receivers reject a batch holding one invalid string, Prometheus labels,
// logs — needs valid text.
func ValidUTF8(s string) string {
	if utf8.ValidString(s) { // ASCII is checked eight bytes at a time
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 2*utf8.UTFMax)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b.WriteRune(utf8.RuneError)
		} else {
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}
