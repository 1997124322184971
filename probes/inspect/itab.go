package inspect

import (
	"debug/elf"
	"encoding/binary"
	"strings"
)

// ErrorItabs maps the address of each itab for the error interface to the
// dynamic type it describes ("*net.OpError"), from .symtab: what lets a
// probe that saw an error's itab name the error's type. Empty for a
// stripped binary.
func (b *Binary) ErrorItabs() map[uint64]string {
	out := make(map[uint64]string)
	b.loadSymtab()
	for name, addr := range b.objects {
		rest, ok := strings.CutPrefix(name, "go:itab.")
		if !ok {
			continue
		}
		typ, ok := strings.CutSuffix(rest, ",error")
		if !ok {
			continue
		}
		out[addr] = typ
	}
	return out
}

// DataSymbol returns the link-time address of a global variable from
// .symtab ("runtime.gcController"); false for a stripped binary.
func (b *Binary) DataSymbol(name string) (uint64, bool) {
	b.loadSymtab()
	addr, ok := b.objects[name]
	return addr, ok
}

// ItabType returns the link-time address of the type descriptor of typ
// ("*net.TCPConn") as the type word of the itab pairing it with the
// interface iface ("net.Conn") holds it: what a probe compares an
// interface's itab type word with to know the dynamic type it holds,
// whichever interface that is. The itab is found in .symtab
// ("go:itab.*net.TCPConn,net.Conn"), so false for a stripped binary, and
// for a binary whose code never converts typ to iface.
func (b *Binary) ItabType(typ, iface string) (addr uint64, ok bool) {
	defer func() {
		if recover() != nil {
			addr, ok = 0, false // a malformed section: unknown, like stripped
		}
	}()
	itab, ok := b.DataSymbol("go:itab." + typ + "," + iface)
	if !ok {
		return 0, false
	}
	// An itab starts {inter, type, ...} in every Go release (runtime.itab,
	// internal/abi.ITab from Go 1.22): the type word is the second.
	const typeWord = 8
	for _, s := range b.elf.Sections {
		if s.Type != elf.SHT_PROGBITS || s.Flags&elf.SHF_ALLOC == 0 || s.Flags&elf.SHF_COMPRESSED != 0 {
			continue
		}
		if itab < s.Addr || itab-s.Addr >= s.FileSize || s.FileSize-(itab-s.Addr) < 2*typeWord {
			continue
		}
		word := make([]byte, 2*typeWord)
		if _, err := s.ReadAt(word, int64(itab-s.Addr)); err != nil {
			return 0, false
		}
		// A PIE's pointers may be left to its load-time relocations.
		b.relocate(itab, word)
		addr = binary.LittleEndian.Uint64(word[typeWord:])
		return addr, addr != 0
	}
	return 0, false
}
