// Package inspect reads what the probes need from a Go executable on disk:
// its Go version and modules, where its functions and their RET instructions
// are, and the offsets of struct fields from its DWARF. It supports
// amd64 and arm64 ELF binaries, stripped or not, PIE or not.
package inspect

import (
	"debug/buildinfo"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"go/version"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
)

// Reasons a question about a binary has no answer, checked with errors.Is.
var (
	ErrNotGo    = errors.New("not a Go binary")                 // no build info
	ErrNoSymbol = errors.New("function not found")              // neither .symtab nor .gopclntab has it
	ErrNoDWARF  = errors.New("binary has no DWARF")             // stripped with -w
	ErrNoField  = errors.New("struct field not found in DWARF") // or the struct itself is missing
	// ErrBadBinary says the file is malformed: a size or offset in it
	// points outside it, a compressed section claims more than it can
	// hold, or a table contradicts itself. Nothing is read from such a
	// file (what its targets run need not be what it says).
	ErrBadBinary = errors.New("malformed binary")
)

// Binary is an opened Go executable. Its methods are safe for concurrent use.
type Binary struct {
	Path      string
	GoVersion string            // toolchain that built it, e.g. "go1.26.8", from debug/buildinfo
	Modules   map[string]string // module path -> version, for the main module and its dependencies
	Settings  map[string]string // build settings (GOEXPERIMENT, -ldflags, ...) from debug/buildinfo
	Arch      string            // GOARCH of the code: "amd64" or "arm64"
	PIE       bool              // ELF type ET_DYN
	Entry     uint64            // link-time address of the entry point (e_entry)

	file *os.File // nil for a binary read from memory (tests)
	elf  *elf.File

	// .symtab, parsed once (each parse of a large binary's table allocates
	// tens of MiB): its STT_FUNC and STT_OBJECT symbols; empty when stripped.
	symsOnce sync.Once
	syms     map[string]elf.Symbol
	objects  map[string]uint64

	pclnOnce sync.Once
	pcln     map[string]pclnFunc
	pclnErr  error

	dwarfOnce sync.Once
	dwarf     *structIndex
	dwarfErr  error
}

// Open opens the Go executable at path. It returns an error wrapping ErrNotGo
// when the file carries no Go build information.
func Open(path string) (*Binary, error) {
	file, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	st, err := file.Stat()
	if err != nil {
		file.Close()
		return nil, err
	}
	b, err := newBinary(path, file, st.Size())
	if err != nil {
		file.Close()
		return nil, err
	}
	b.file = file
	return b, nil
}

// newBinary reads the size bytes of file. Whatever the file says about
// itself is checked against size before anything is allocated for it.
func newBinary(path string, file io.ReaderAt, size int64) (b *Binary, err error) {
	defer recovered(&err, "open "+path)
	defer func() {
		if err != nil {
			b = nil
		}
	}()
	// Build info first: it is format-independent, so a file that is not Go at
	// all (a shell script, a C program) is reported as such rather than as a
	// malformed ELF.
	bi, err := buildinfo.Read(file)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w: %w", path, ErrNotGo, err)
	}
	ef, err := elf.NewFile(file)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	arch, ok := archs[ef.Machine]
	if ef.Class != elf.ELFCLASS64 || ef.Data != elf.ELFDATA2LSB || !ok {
		return nil, fmt.Errorf("open %s: unsupported ELF %v %v %v: only amd64 and arm64 are supported", path, ef.Class, ef.Data, ef.Machine)
	}
	if err := checkBounds(ef, uint64(size)); err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	b = &Binary{
		Path:      path,
		GoVersion: strings.ToValidUTF8(bi.GoVersion, "\uFFFD"), // the file's bytes; it becomes a resource attribute
		Modules:   make(map[string]string, len(bi.Deps)+1),
		Settings:  make(map[string]string, len(bi.Settings)),
		Arch:      arch,
		PIE:       ef.Type == elf.ET_DYN,
		Entry:     ef.Entry,
		elf:       ef,
	}
	if bi.Main.Path != "" {
		b.Modules[bi.Main.Path] = bi.Main.Version
	}
	for _, m := range bi.Deps {
		v := m.Version
		if m.Replace != nil {
			// The code in the binary is the replacement's.
			v = m.Replace.Version
		}
		b.Modules[m.Path] = v
	}
	for _, s := range bi.Settings {
		b.Settings[s.Key] = s.Value
	}
	return b, nil
}

// archs are the ELF machines supported, by GOARCH.
var archs = map[elf.Machine]string{
	elf.EM_X86_64:  "amd64",
	elf.EM_AARCH64: "arm64",
}

// File is the file the binary was read from: the very inode inspected,
// whatever its path names by now.
func (b *Binary) File() *os.File { return b.file }

// Close releases the file.
func (b *Binary) Close() error {
	if b.file == nil {
		return nil
	}
	return b.file.Close()
}

// recovered, deferred, turns a panic into an error wrapping ErrBadBinary:
// the standard library's debug packages are not hardened against crafted
// input, and a panic in them refuses the file, nothing more.
func recovered(err *error, what string) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("%s: %w: %v", what, ErrBadBinary, r)
	}
}

// maxInflate bounds what a compressed section may claim to hold, as a
// multiple of its compressed size: DWARF compresses about 3 to 1, zlib
// cannot do better than about 1000 to 1 (a "bomb" of zeros).
const maxInflate = 32

// maxDebugPerFile bounds the debug sections' uncompressed size as a
// multiple of the file's: a Go binary's DWARF uncompresses to about 0.6
// times the file.
const maxDebugPerFile = 4

// checkBounds refuses a file whose sections or segments lie outside its
// size bytes, or whose compressed debug sections claim more than they can
// reasonably hold: everything read later is then bounded by the file.
func checkBounds(ef *elf.File, size uint64) error {
	within := func(off, n uint64) bool { return off <= size && n <= size-off }
	for _, p := range ef.Progs {
		if !within(p.Off, p.Filesz) {
			return fmt.Errorf("%w: segment at %#x of %#x bytes runs past the file's %d", ErrBadBinary, p.Off, p.Filesz, size)
		}
	}
	var debug uint64
	for _, s := range ef.Sections {
		if s.Type == elf.SHT_NOBITS {
			continue
		}
		if !within(s.Offset, s.FileSize) {
			return fmt.Errorf("%w: section %s at %#x of %#x bytes runs past the file's %d", ErrBadBinary, s.Name, s.Offset, s.FileSize, size)
		}
		if !strings.HasPrefix(s.Name, ".debug_") && !strings.HasPrefix(s.Name, ".zdebug_") {
			continue
		}
		n, err := uncompressedSize(s)
		if err != nil {
			return err
		}
		if n/maxInflate > s.FileSize {
			return fmt.Errorf("%w: section %s claims %d bytes compressed into %d", ErrBadBinary, s.Name, n, s.FileSize)
		}
		if debug += n; debug/maxDebugPerFile > size {
			return fmt.Errorf("%w: debug sections claim more than %d times the file's %d bytes", ErrBadBinary, maxDebugPerFile, size)
		}
	}
	return nil
}

// uncompressedSize is the size a debug section says it has uncompressed:
// from its compression header (SHF_COMPRESSED, already read by debug/elf)
// or its "ZLIB" prefix (.zdebug_*, read by debug/elf only when opened).
func uncompressedSize(s *elf.Section) (uint64, error) {
	if s.Flags&elf.SHF_COMPRESSED != 0 || !strings.HasPrefix(s.Name, ".zdebug_") {
		return s.Size, nil
	}
	var hdr [12]byte
	if n, _ := s.ReadAt(hdr[:], 0); n < len(hdr) || string(hdr[:4]) != "ZLIB" {
		return s.FileSize, nil // not compressed: debug/elf reads it as is
	}
	return binary.BigEndian.Uint64(hdr[4:]), nil
}

// GoVersionAtLeast reports whether the binary was built by Go 1.minor or
// later. Release candidates count as their release ("go1.24rc1" is 1.24);
// development toolchains ("devel ...") count as newer than any release.
func (b *Binary) GoVersionAtLeast(minor int) bool {
	if strings.HasPrefix(b.GoVersion, "devel") {
		return true
	}
	m, ok := GoMinor(b.GoVersion)
	return ok && m >= minor
}

// GoMinor returns N for a Go 1.N release version such as "go1.23.4",
// "go1.24rc1" or "go1.22.0 X:nocoverageredesign". It reports false for
// anything else, including development versions.
func GoMinor(v string) (int, bool) {
	// buildinfo appends enabled experiments after a space.
	v, _, _ = strings.Cut(v, " ")
	lang := version.Lang(v)
	rest, ok := strings.CutPrefix(lang, "go1.")
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(rest)
	if err != nil {
		return 0, false
	}
	return n, true
}
