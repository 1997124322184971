// Package inspect reads what the probes need from a Go executable on disk:
// its Go version and modules, where its functions and their RET instructions
// are, and the offsets of struct fields from its DWARF. It supports
// amd64 ELF binaries, stripped or not, PIE or not.
package inspect

import (
	"debug/buildinfo"
	"debug/elf"
	"errors"
	"fmt"
	"go/version"
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
)

// Binary is an opened Go executable. Its methods are safe for concurrent use.
type Binary struct {
	Path      string
	GoVersion string            // toolchain that built it, e.g. "go1.26.8", from debug/buildinfo
	Modules   map[string]string // module path -> version, for the main module and its dependencies
	Settings  map[string]string // build settings (GOEXPERIMENT, -ldflags, ...) from debug/buildinfo
	PIE       bool              // ELF type ET_DYN
	Entry     uint64            // link-time address of the entry point (e_entry)

	file *os.File
	elf  *elf.File

	symsOnce sync.Once
	syms     map[string]elf.Symbol // STT_FUNC symbols of .symtab; empty when stripped

	pclnOnce sync.Once
	pcln     *pclnIndex
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
	b, err := newBinary(path, file)
	if err != nil {
		file.Close()
		return nil, err
	}
	return b, nil
}

func newBinary(path string, file *os.File) (*Binary, error) {
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
	if ef.Class != elf.ELFCLASS64 || ef.Machine != elf.EM_X86_64 {
		return nil, fmt.Errorf("open %s: unsupported ELF %v %v: only amd64 is supported", path, ef.Class, ef.Machine)
	}
	b := &Binary{
		Path:      path,
		GoVersion: bi.GoVersion,
		Modules:   make(map[string]string, len(bi.Deps)+1),
		Settings:  make(map[string]string, len(bi.Settings)),
		PIE:       ef.Type == elf.ET_DYN,
		Entry:     ef.Entry,
		file:      file,
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

// Close releases the file.
func (b *Binary) Close() error {
	return b.file.Close()
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
