package probes

import (
	"unicode/utf8"

	"github.com/golens/golens/probes/event"
)

// String returns the n bytes a probe copied into buf as valid UTF-8. When
// cut, the probe stopped at the end of buf, which may have split the last
// character: its leading bytes are dropped (the event says it was cut).
// Any other invalid byte is the target's own and becomes U+FFFD.
func String(buf []byte, n int, cut bool) string {
	b := buf[:min(max(n, 0), len(buf))]
	if cut {
		b = trimPartialRune(b)
	}
	return event.ValidUTF8(string(b))
}

// trimPartialRune drops an incomplete encoding at the end of b.
func trimPartialRune(b []byte) []byte {
	i := len(b) - 1
	for i > 0 && i > len(b)-utf8.UTFMax && !utf8.RuneStart(b[i]) {
		i--
	}
	if i >= 0 && !utf8.FullRune(b[i:]) {
		return b[:i]
	}
	return b
}
