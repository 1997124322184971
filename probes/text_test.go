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

// A Text answers what String answers, for strings it remembers, strings
// that share its slots, strings too long to remember and the buffer being
// reused by the next event (what the reader does): the remembered string
// must not alias the buffer.
func TestText(t *testing.T) {
	tx := NewText()
	buf := make([]byte, 256)
	fill := func(s string) int { return copy(buf, s) }
	inputs := []string{"GET", "/api/users", "/\xff\xfe", "/caf\xc3", "127.0.0.1:8080", ""}
	for i := range 2 * textSlots { // more than the slots: some share one
		inputs = append(inputs, "/p/"+string(rune('a'+i%26))+string(rune('a'+i/26)))
	}
	inputs = append(inputs, string(make([]byte, textMax+1)))
	for round := range 3 {
		for _, in := range inputs {
			for _, cut := range []bool{false, true} {
				n := fill(in)
				want := String(buf, n, cut)
				got := tx.String(buf, n, cut)
				if got != want {
					t.Fatalf("round %d: Text.String(%q, %v) = %q, String = %q", round, in, cut, got, want)
				}
				fill("XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX") // the next event
				if got != want {
					t.Fatalf("round %d: %q changed with the buffer: %q", round, in, got)
				}
			}
		}
	}
	var nilText *Text
	if got := nilText.String([]byte("/x"), 2, false); got != "/x" {
		t.Errorf("nil Text: %q", got)
	}
	// A remembered string costs no allocation.
	n := fill("/api/users")
	tx.String(buf, n, false)
	if a := testing.AllocsPerRun(100, func() { tx.String(buf, n, false) }); a != 0 {
		t.Errorf("remembered string: %v allocations, want 0", a)
	}
}

// FuzzText: a Text answers what String answers, whatever came before.
func FuzzText(f *testing.F) {
	f.Add([]byte("/caf\xc3"), []byte("/caf"), 5, true)
	f.Add([]byte("GET"), []byte("GET"), 3, false)
	tx := NewText()
	f.Fuzz(func(t *testing.T, a, b []byte, n int, cut bool) {
		for _, buf := range [][]byte{a, b, a} {
			if got, want := tx.String(buf, n, cut), String(buf, n, cut); got != want {
				t.Fatalf("Text.String(%q, %d, %v) = %q, String = %q", buf, n, cut, got, want)
			}
		}
	})
}
