package event

import (
	"testing"
	"unicode/utf8"
)

func TestValidUTF8(t *testing.T) {
	for in, want := range map[string]string{
		"":                "",
		"/hello":          "/hello",
		"/café":           "/café",
		"/\xff\xfe":       "/\uFFFD\uFFFD",
		"caf\xe9-svc":     "caf\uFFFD-svc",
		"\xed\xa0\x80":    "\uFFFD\uFFFD\uFFFD", // a surrogate: three bad bytes
		"\xf0\x9f\x98":    "\uFFFD\uFFFD\uFFFD", // a rune without its last byte
		"ok\uFFFDalready": "ok\uFFFDalready",
	} {
		if got := ValidUTF8(in); got != want {
			t.Errorf("ValidUTF8(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzValidUTF8: the result is what converting to []rune gives (each
// byte that starts no valid encoding is one U+FFFD), and a valid string
// comes back as it is.
func FuzzValidUTF8(f *testing.F) {
	for _, s := range []string{"", "/hello", "/café", "/\xff\xfe", "\xed\xa0\x80", "\xf0\x9f\x98\x80\xf0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := ValidUTF8(s)
		if want := string([]rune(s)); got != want {
			t.Fatalf("ValidUTF8(%q) = %q, want %q", s, got, want)
		}
		if !utf8.ValidString(got) || (utf8.ValidString(s) && got != s) {
			t.Fatalf("ValidUTF8(%q) = %q", s, got)
		}
	})
}
