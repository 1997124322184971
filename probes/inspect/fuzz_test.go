package inspect_test

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/golens/golens/probes/inspect"
)

// tinySource is the smallest real Go program: the runtime alone.
const tinySource = "package main\n\nfunc main() { println(\"hi\") }\n"

// fuzzSeed is a real binary and the offsets of the parts golens parses.
type fuzzSeed struct {
	data    []byte
	regions []uint64 // ELF header, program and section headers, sections read
}

// fuzzSections are the sections whose bytes golens reads.
var fuzzSections = []string{".gopclntab", ".symtab", ".strtab", ".text", ".go.buildinfo", ".noptrdata", ".go.module",
	".debug_info", ".debug_abbrev", ".debug_str", ".debug_line", ".debug_addr", ".debug_rnglists", ".rela", ".data.rel.ro"}

// FuzzOpen reads a real binary with bytes changed anywhere golens looks,
// and asks it what the probes ask: nothing panics, nothing allocates
// beyond a multiple of the file, whatever is found lies inside the file.
// (The fuzzer mutates no input over 1 MB, and Go binaries are larger: the
// input is which binary, where in it, and the bytes put there.) Seeded
// with a small program built plain, stripped and as PIE, unchanged and
// with the function table's count of functions raised to 4 billion, and
// for arm64 plain and as stripped PIE.
func FuzzOpen(f *testing.F) {
	dir := f.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(tinySource), 0o644); err != nil {
		f.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module tiny\n\ngo 1.21\n"), 0o644); err != nil {
		f.Fatal(err)
	}
	var seeds []fuzzSeed
	for i, build := range []struct {
		arch  string
		flags []string
	}{{"amd64", nil}, {"amd64", []string{"-ldflags=-s -w"}}, {"amd64", []string{"-buildmode=pie"}}, {"arm64", nil}, {"arm64", []string{"-buildmode=pie", "-ldflags=-s -w"}}} {
		flags := build.flags
		out := filepath.Join(dir, fmt.Sprint("tiny", i))
		cmd := exec.Command("go", append(append([]string{"build", "-o", out}, flags...), ".")...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOTOOLCHAIN=local", "GOWORK=off", "GOFLAGS=-buildvcs=false", "GOOS=linux", "GOARCH="+build.arch)
		if b, err := cmd.CombinedOutput(); err != nil {
			f.Fatalf("build %v: %v\n%s", flags, err, b)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			f.Fatal(err)
		}
		ef, err := elf.NewFile(bytes.NewReader(b))
		if err != nil {
			f.Fatal(err)
		}
		le := binary.LittleEndian
		s := fuzzSeed{data: b, regions: []uint64{0, le.Uint64(b[0x20:]), le.Uint64(b[0x28:])}}
		for _, name := range fuzzSections {
			if sec := ef.Section(name); sec != nil && sec.Type != elf.SHT_NOBITS {
				s.regions = append(s.regions, sec.Offset)
			} else {
				s.regions = append(s.regions, 0)
			}
		}
		seeds = append(seeds, s)
	}
	pclntab := uint8(3) // regions[3] is .gopclntab
	for i := range seeds {
		f.Add(uint8(i), uint8(0), uint16(0), []byte{})
		f.Add(uint8(i), pclntab, uint16(9), []byte{0xff, 0xff, 0xff})
	}
	f.Fuzz(func(t *testing.T, which, region uint8, off uint16, patch []byte) {
		seed := seeds[int(which)%len(seeds)]
		at := seed.regions[int(region)%len(seed.regions)] + uint64(off)
		if at >= uint64(len(seed.data)) {
			return
		}
		data := bytes.Clone(seed.data)
		copy(data[at:], patch)
		inspectAll(t, data)
	})
}

// inspectAll asks b everything the probes ask of a target.
func inspectAll(t *testing.T, data []byte) {
	b, err := inspect.OpenReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return
	}
	defer b.Close()
	for _, name := range []string{"runtime.stopTheWorldWithSema", "runtime.startTheWorldWithSema", "runtime.newproc1", "main.main"} {
		fn, err := b.Func(name)
		if err != nil {
			continue
		}
		if fn.FileOffset > uint64(len(data)) || fn.Size > uint64(len(data))-fn.FileOffset {
			t.Errorf("%s at %#x+%#x: outside the %d bytes", name, fn.FileOffset, fn.Size, len(data))
		}
		rets, err := b.Returns(fn)
		for _, r := range rets {
			if err == nil && r >= fn.Size {
				t.Errorf("%s: RET at +%#x past its %#x bytes", name, r, fn.Size)
			}
		}
		b.PushFrame(fn)
	}
	b.HasFunc("net/http.(*Client).do")
	b.FieldOffset("runtime.g", "goid")
	b.FieldOffset("runtime.hchan", "sendq.first")
	b.StructSize("runtime.g")
	b.ErrorItabs()
	b.DataSymbol("runtime.gcController")
	b.ItabType("*net.TCPConn", "net.Conn")
	b.HasDWARF()
	b.GoVersionAtLeast(21)
}
