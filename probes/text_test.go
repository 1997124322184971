package probes

import (
	"testing"
	"unicode/utf8"

	"github.com/golens/golens/probes/event"
)

func TestString(t *testing.T) {
	buf := func(s string) []byte { return []byte(s) }
	for _, c := range []struct {
		name string
		buf  []byte
		n    int
		cut  bool
		want string
	}{
		{"ascii", buf("/hello...."), 6, false, "/hello"},
		{"n past the buffer", buf("/abc"), 400, false, "/abc"},
		{"negative n", buf("/abc"), -1, false, ""},
		{"valid multi-byte", buf("/café"), 6, false, "/café"},
		{"invalid bytes", buf("/\xff\xfe"), 3, false, "/\uFFFD\uFFFD"},
		{"cut inside a 2-byte rune", buf("/caf\xc3"), 5, true, "/caf"},
		{"cut inside a 3-byte rune", buf("/€\xe2\x82"), 6, true, "/€"},
		{"cut inside a 4-byte rune", buf("/\xf0\x9f\x98"), 4, true, "/"},
		{"cut after a whole rune", buf("/café"), 6, true, "/café"},
		// Not cut: a lone lead byte at the end is the target's own.
		{"partial rune, not cut", buf("/caf\xc3"), 5, false, "/caf\uFFFD"},
		// Cut, but the bytes before the end are invalid anyway.
		{"cut after invalid bytes", buf("/\xff\x80"), 3, true, "/\uFFFD\uFFFD"},
		{"cut, lone continuation bytes", buf("/a\x80\x80\x80"), 5, true, "/a\uFFFD\uFFFD\uFFFD"},
		{"cut, overlong prefix", buf("/\xe0\x80"), 3, true, "/\uFFFD\uFFFD"},
		{"cut, surrogate prefix", buf("/\xed\xa0"), 3, true, "/\uFFFD\uFFFD"},
		{"empty", nil, 0, true, ""},
	} {
		got := String(c.buf, c.n, c.cut)
		if got != c.want {
			t.Errorf("%s: String(%q, %d, %v) = %q, want %q", c.name, c.buf, c.n, c.cut, got, c.want)
		}
		if !utf8.ValidString(got) {
			t.Errorf("%s: %q is not valid UTF-8", c.name, got)
		}
	}
}

// FuzzString: the result is valid UTF-8; uncut, it is the bytes made
// valid; cut, at most the last three bytes (one partial rune) are dropped
// before that.
func FuzzString(f *testing.F) {
	f.Add([]byte("/caf\xc3"), 5, true)
	f.Add([]byte("/\xff\xfe"), 3, false)
	f.Add([]byte("/€\xe2\x82"), 6, true)
	f.Fuzz(func(t *testing.T, buf []byte, n int, cut bool) {
		got := String(buf, n, cut)
		if !utf8.ValidString(got) {
			t.Fatalf("String(%q, %d, %v) = %q", buf, n, cut, got)
		}
		b := buf[:min(max(n, 0), len(buf))]
		if !cut {
			if want := event.ValidUTF8(string(b)); got != want {
				t.Fatalf("String(%q, %d, false) = %q, want %q", buf, n, got, want)
			}
			return
		}
		for drop := 0; drop < utf8.UTFMax && drop <= len(b); drop++ {
			if got == event.ValidUTF8(string(b[:len(b)-drop])) {
				return
			}
		}
		t.Fatalf("String(%q, %d, true) = %q: more than a partial rune dropped", buf, n, got)
	})
}
