package inspect

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"

	"golang.org/x/arch/x86/x86asm"
)

// Func describes one function of a Binary.
type Func struct {
	Name       string
	Addr       uint64 // virtual address of the entry, as in the ELF
	Size       uint64 // bytes of code, without the alignment padding after it
	FileOffset uint64 // offset of the entry in the file: what a uprobe attaches to
}

// Func finds the function called name, such as "net/http.serverHandler.ServeHTTP"
// or "net/http.(*response).WriteHeader". It looks in .symtab and, when the
// binary was stripped of it, in .gopclntab, which Go binaries always keep.
// The error wraps ErrNoSymbol when neither has the function.
func (b *Binary) Func(name string) (Func, error) {
	f, ok := b.symtabFunc(name)
	// A symbol table lists every function the linker kept: a name it lacks
	// is absent, and .gopclntab is read (all of it, tens of MiB for a large
	// binary) only for a binary stripped of its table.
	if !ok && len(b.syms) == 0 {
		var err error
		f, ok, err = b.pclntabFunc(name)
		if err != nil {
			return Func{}, err
		}
	}
	if !ok {
		return Func{}, fmt.Errorf("%s in %s: %w", name, b.Path, ErrNoSymbol)
	}
	off, err := b.fileOffset(f.Addr)
	if err != nil {
		return Func{}, fmt.Errorf("%s in %s: %w", name, b.Path, err)
	}
	f.FileOffset = off
	return f, nil
}

// HasFunc reports whether the binary has a function called name.
func (b *Binary) HasFunc(name string) bool {
	_, err := b.Func(name)
	return err == nil
}

// Returns gives the offsets, relative to f's entry, of every RET instruction
// in f, found by decoding its whole body. A body that does not decode is an
// error: a uretprobe-style probe placed on a guessed offset would corrupt the
// target.
func (b *Binary) Returns(f Func) (_ []uint64, err error) {
	defer recovered(&err, "find returns of "+f.Name+" in "+b.Path)
	code, err := b.code(f.Addr, f.Size)
	if err != nil {
		return nil, fmt.Errorf("read %s in %s: %w", f.Name, b.Path, err)
	}
	if b.Arch == "arm64" {
		return arm64Returns(code), nil
	}
	var rets []uint64
	err = decode(code, func(off int, inst x86asm.Inst) {
		if inst.Op == x86asm.RET {
			rets = append(rets, uint64(off))
		}
	})
	if err != nil {
		return nil, fmt.Errorf("decode %s in %s: %w", f.Name, b.Path, err)
	}
	return rets, nil
}

// decode calls fn for each instruction of code, in order.
func decode(code []byte, fn func(off int, inst x86asm.Inst)) error {
	for off := 0; off < len(code); {
		inst, err := x86asm.Decode(code[off:], 64)
		if err != nil {
			return fmt.Errorf("at +%#x: %w", off, err)
		}
		fn(off, inst)
		off += inst.Len
	}
	return nil
}

// loadSymtab indexes .symtab once: functions by name (the first of a
// duplicated name) and data objects by name.
func (b *Binary) loadSymtab() {
	b.symsOnce.Do(func() {
		b.syms = make(map[string]elf.Symbol)
		b.objects = make(map[string]uint64)
		// A binary stripped with -s has no .symtab: ErrNoSymbols leaves the
		// indexes empty and function lookups fall through to .gopclntab.
		syms, _ := b.elf.Symbols()
		for _, s := range syms {
			switch elf.ST_TYPE(s.Info) {
			case elf.STT_FUNC:
				if s.Section == elf.SHN_UNDEF || s.Value == 0 {
					continue
				}
				if _, dup := b.syms[s.Name]; !dup {
					b.syms[s.Name] = s
				}
			case elf.STT_OBJECT:
				if _, dup := b.objects[s.Name]; !dup {
					b.objects[s.Name] = s.Value
				}
			}
		}
	})
}

func (b *Binary) symtabFunc(name string) (Func, bool) {
	b.loadSymtab()
	s, ok := b.syms[name]
	if !ok {
		return Func{}, false
	}
	return Func{Name: name, Addr: s.Value, Size: s.Size}, true
}

func (b *Binary) pclntabFunc(name string) (Func, bool, error) {
	b.pclnOnce.Do(func() {
		b.pcln, b.pclnErr = b.readPclntab()
	})
	if b.pclnErr != nil {
		return Func{}, false, b.pclnErr
	}
	fn, ok := b.pcln[name]
	if !ok {
		return Func{}, false, nil
	}
	f := Func{Name: name, Addr: fn.entry, Size: fn.end - fn.entry}
	// .gopclntab only knows where the next function starts, so its size
	// includes the INT3 padding that aligns the next entry. Drop it, so that
	// sizes agree with .symtab's; keep it when the body does not decode, as
	// Returns will then say. (On arm64 .symtab's sizes include the padding
	// too.)
	if b.Arch != "amd64" {
		return f, true, nil
	}
	if code, err := b.code(f.Addr, f.Size); err == nil {
		end := 0
		err := decode(code, func(off int, inst x86asm.Inst) {
			if code[off] != 0xcc { // INT3
				end = off + inst.Len
			}
		})
		if err == nil {
			f.Size = uint64(end)
		}
	}
	return f, true, nil
}

func (b *Binary) readPclntab() (_ map[string]pclnFunc, err error) {
	defer recovered(&err, "read .gopclntab of "+b.Path)
	addr, data, err := b.findPclntab()
	if err != nil {
		return nil, fmt.Errorf("read .gopclntab of %s: %w", b.Path, err)
	}
	// Entries in .gopclntab are offsets from runtime.text, which Go 1.18+
	// no longer records there.
	textStart, err := b.textStart(addr)
	if err != nil {
		return nil, err
	}
	funcs, err := parsePclntab(data, textStart, b.Arch)
	if err != nil {
		return nil, fmt.Errorf("read .gopclntab of %s: %w", b.Path, err)
	}
	return funcs, nil
}

// pclntabHeader is how the table starts from Go 1.20 on (magic 0xfffffff1;
// 1.18 and 1.19 have 0xfffffff0), followed by pad, pad, minLC (the
// instruction size quantum: 1 on amd64, 4 on arm64), ptrSize 8.
var pclntabHeader = map[string][][]byte{
	"amd64": {
		{0xf1, 0xff, 0xff, 0xff, 0, 0, 1, 8},
		{0xf0, 0xff, 0xff, 0xff, 0, 0, 1, 8},
	},
	"arm64": {
		{0xf1, 0xff, 0xff, 0xff, 0, 0, 4, 8},
		{0xf0, 0xff, 0xff, 0xff, 0, 0, 4, 8},
	},
}

// findPclntab returns the address and the bytes, up to the end of the
// section that holds it, of the runtime's function table.
func (b *Binary) findPclntab() (uint64, []byte, error) {
	// The internal linker names its section .gopclntab, or, for PIE up to
	// Go 1.25, .data.rel.ro.gopclntab.
	for _, name := range []string{".gopclntab", ".data.rel.ro.gopclntab"} {
		if s := b.elf.Section(name); s != nil {
			data, err := s.Data()
			return s.Addr, data, err
		}
	}
	// An external linker may merge it into .data.rel.ro or .rodata: look for
	// its header there.
	for _, name := range []string{".data.rel.ro", ".rodata"} {
		s := b.elf.Section(name)
		if s == nil || s.Type != elf.SHT_PROGBITS {
			continue
		}
		data, err := s.Data()
		if err != nil {
			return 0, nil, err
		}
		for _, h := range pclntabHeader[b.Arch] {
			// The table is pointer-aligned.
			for i := 0; i+len(h) <= len(data); i += 8 {
				if bytes.Equal(data[i:i+len(h)], h) {
					return s.Addr + uint64(i), data[i:], nil
				}
			}
		}
	}
	return 0, nil, errors.New("no .gopclntab section and no table header in .data.rel.ro or .rodata")
}

// textStart returns the address of runtime.text. Without .symtab, it takes
// it from the runtime's moduledata: the start of .text, which is what the go
// tool assumes, is only right for the internal linker. An external linker
// (any binary using cgo) puts C code first, and offsets taken from there
// would hook the wrong instructions.
func (b *Binary) textStart(pclntab uint64) (uint64, error) {
	if f, ok := b.symtabFunc("runtime.text"); ok {
		return f.Addr, nil
	}
	if text, ok := b.moduleText(pclntab); ok {
		return text, nil
	}
	return 0, fmt.Errorf("find runtime.text in %s: no .symtab and no moduledata", b.Path)
}

// Layout of the head of runtime.moduledata, the same from Go 1.18 to 1.26:
// pcHeader *pcHeader; funcnametab, cutab, filetab, pctab, pclntable, ftab
// slices; findfunctab, minpc, maxpc, text uintptr.
const (
	mdFuncnametab = 8
	mdFtab        = 8 + 5*24
	mdMinPC       = 8 + 6*24 + 8
	mdMaxPC       = mdMinPC + 8
	mdText        = mdMaxPC + 8
	mdSize        = mdText + 8
)

// moduleText finds runtime.firstmoduledata by its first field, a pointer to
// the function table at pclntab, and returns its text field.
func (b *Binary) moduleText(pclntab uint64) (uint64, bool) {
	le := binary.LittleEndian
	// Go 1.26 gives moduledata a section of its own; before, it is in
	// .noptrdata, or wherever an external linker put that.
	for _, name := range []string{".go.module", ".noptrdata", ".data"} {
		s := b.elf.Section(name)
		if s == nil || s.Type != elf.SHT_PROGBITS {
			continue
		}
		data, err := s.Data()
		if err != nil {
			continue
		}
		b.relocate(s.Addr, data)
		for off := 0; off+mdSize <= len(data); off += 8 {
			if le.Uint64(data[off:]) != pclntab {
				continue
			}
			// Check the fields around text against the table, so that a
			// stray copy of the pointer is not taken for moduledata.
			md := data[off:]
			names, ftab := le.Uint64(md[mdFuncnametab:]), le.Uint64(md[mdFtab:])
			nftab := le.Uint64(md[mdFtab+8:])
			minpc, maxpc, text := le.Uint64(md[mdMinPC:]), le.Uint64(md[mdMaxPC:]), le.Uint64(md[mdText:])
			if names <= pclntab || ftab <= pclntab || nftab == 0 || text > minpc || minpc >= maxpc {
				continue
			}
			if _, err := b.fileOffset(text); err != nil {
				continue
			}
			return text, true
		}
	}
	return 0, false
}

// relocate applies to data, the contents of memory at addr, the
// R_X86_64_RELATIVE (R_AARCH64_RELATIVE) relocations that a
// position-independent binary gets at load time: linkers need not store the pointer in the file as well. Load
// address 0 is assumed, which is what the ELF's own addresses are.
func (b *Binary) relocate(addr uint64, data []byte) {
	if !b.PIE {
		return
	}
	le := binary.LittleEndian
	for _, s := range b.elf.Sections {
		if s.Type != elf.SHT_RELA {
			continue
		}
		rela, err := s.Data()
		if err != nil {
			continue
		}
		for ; len(rela) >= 24; rela = rela[24:] {
			off, info, addend := le.Uint64(rela), le.Uint64(rela[8:]), le.Uint64(rela[16:])
			if !relative(b.Arch, elf.R_TYPE64(info)) {
				continue
			}
			if off >= addr && off+8 <= addr+uint64(len(data)) {
				le.PutUint64(data[off-addr:], addend)
			}
		}
	}
}

// relative reports whether a relocation of type typ is arch's "base plus
// addend".
func relative(arch string, typ uint32) bool {
	switch arch {
	case "amd64":
		return elf.R_X86_64(typ) == elf.R_X86_64_RELATIVE
	case "arm64":
		return elf.R_AARCH64(typ) == elf.R_AARCH64_RELATIVE
	}
	return false
}

// fileOffset converts a virtual address of code into an offset in the file,
// through the executable PT_LOAD segment that maps it.
func (b *Binary) fileOffset(addr uint64) (uint64, error) {
	for _, p := range b.elf.Progs {
		if p.Type != elf.PT_LOAD || p.Flags&elf.PF_X == 0 {
			continue
		}
		if addr >= p.Vaddr && addr < p.Vaddr+p.Filesz {
			return addr - p.Vaddr + p.Off, nil
		}
	}
	return 0, fmt.Errorf("address %#x is in no executable segment", addr)
}

// code reads size bytes of code at addr from the section that holds them,
// never more than the section has in the file.
func (b *Binary) code(addr, size uint64) ([]byte, error) {
	for _, s := range b.elf.Sections {
		if s.Flags&elf.SHF_EXECINSTR == 0 || s.Type != elf.SHT_PROGBITS || s.Flags&elf.SHF_COMPRESSED != 0 {
			continue
		}
		if addr < s.Addr || addr-s.Addr >= s.FileSize {
			continue
		}
		if size > s.FileSize-(addr-s.Addr) {
			return nil, fmt.Errorf("%w: %#x+%#x runs past the end of %s", ErrBadBinary, addr, size, s.Name)
		}
		buf := make([]byte, size)
		if _, err := s.ReadAt(buf, int64(addr-s.Addr)); err != nil {
			return nil, fmt.Errorf("read %s at %#x: %w", s.Name, addr, err)
		}
		return buf, nil
	}
	return nil, errors.New("address is in no executable section")
}

// PushFrame returns the offset of the prologue's "PUSH RBP" in f, if the
// function has one among its first instructions. Probing there rather than
// at the entry: the kernel emulates a push, while the entry's stack-bound
// check (CMP RSP, [R14+16]) must be single-stepped out of line, a second
// trap. The argument registers and R14 are untouched up to that point.
//
// On arm64 it is the store of the link register that allocates the frame
// (see arm64PushFrame); arm64 kernels single-step that as they do the
// entry's load, so the gain there is only that a call which grows its
// stack passes it once.
func (b *Binary) PushFrame(f Func) (uint64, bool) {
	n := f.Size
	if n > 32 {
		n = 32
	}
	code, err := b.code(f.Addr, n)
	if err != nil {
		return 0, false
	}
	if b.Arch == "arm64" {
		return arm64PushFrame(code)
	}
	for off := 0; off < len(code); {
		inst, err := x86asm.Decode(code[off:], 64)
		if err != nil {
			return 0, false
		}
		if inst.Op == x86asm.PUSH && inst.Args[0] == x86asm.RBP {
			return uint64(off), true
		}
		switch inst.Op {
		case x86asm.CMP, x86asm.JBE, x86asm.JB, x86asm.LEA:
			// the stack-bound check and its branch to morestack
		default:
			return 0, false
		}
		off += inst.Len
	}
	return 0, false
}
