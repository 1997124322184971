package probes

import (
	"hash/maphash"
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

// textSlots is how many strings a Text remembers; textMax is the longest it
// remembers. A target's methods, hosts, routes, client addresses and most
// paths repeat request after request: remembering them saves an allocation
// per field per event, and the garbage the agent's GC would collect.
const (
	textSlots = 256
	textMax   = 128
)

// Text is String with a memory of one target's recent strings: a
// direct-mapped cache, so a miss costs one hash more than String and a
// target whose paths never repeat cannot make it grow (at most textSlots
// strings of up to textMax bytes). The reader alone uses it: one pass at a
// time, so it needs no lock. A nil Text is String.
type Text struct {
	seed  maphash.Seed
	slots [textSlots]textSlot
}

// textSlot keeps the bytes a probe copied (raw) and the string made of
// them (the same string unless it was not valid UTF-8).
type textSlot struct{ raw, s string }

// NewText returns an empty Text.
func NewText() *Text { return &Text{seed: maphash.MakeSeed()} }

// String is String(buf, n, cut), remembered.
func (t *Text) String(buf []byte, n int, cut bool) string {
	b := buf[:min(max(n, 0), len(buf))]
	if t == nil || len(b) > textMax {
		return String(buf, n, cut)
	}
	if cut {
		b = trimPartialRune(b)
	}
	if len(b) == 0 {
		return ""
	}
	slot := &t.slots[maphash.Bytes(t.seed, b)%textSlots]
	if slot.raw == string(b) { // compares without a copy
		return slot.s
	}
	raw := string(b)
	slot.raw, slot.s = raw, event.ValidUTF8(raw)
	return slot.s
}
