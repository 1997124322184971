package inspect

import (
	"debug/elf"
	"strings"
)

// ErrorItabs maps the address of each itab for the error interface to the
// dynamic type it describes ("*net.OpError"), from .symtab: what lets a
// probe that saw an error's itab name the error's type. Empty for a
// stripped binary.
func (b *Binary) ErrorItabs() map[uint64]string {
	out := make(map[uint64]string)
	syms, err := b.elf.Symbols()
	if err != nil {
		return out
	}
	for _, s := range syms {
		if elf.ST_TYPE(s.Info) != elf.STT_OBJECT {
			continue
		}
		rest, ok := strings.CutPrefix(s.Name, "go:itab.")
		if !ok {
			continue
		}
		typ, ok := strings.CutSuffix(rest, ",error")
		if !ok {
			continue
		}
		out[s.Value] = typ
	}
	return out
}

// DataSymbol returns the link-time address of a global variable from
// .symtab ("runtime.gcController"); false for a stripped binary.
func (b *Binary) DataSymbol(name string) (uint64, bool) {
	syms, err := b.elf.Symbols()
	if err != nil {
		return 0, false
	}
	for _, s := range syms {
		if s.Name == name && elf.ST_TYPE(s.Info) == elf.STT_OBJECT {
			return s.Value, true
		}
	}
	return 0, false
}
