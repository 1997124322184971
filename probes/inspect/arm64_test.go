package inspect_test

import (
	"bufio"
	"bytes"
	"debug/dwarf"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/golens/golens/probes/inspect"
	"github.com/golens/golens/probes/inspect/inspecttest"
)

// arm64Go are the Go releases whose linux/arm64 binaries the arm64 tests
// inspect: every release golens supports, each cross-built here by its own
// toolchain (the go command fetches it once; the build cache keeps its
// arm64 standard library).
var arm64Go = []string{"go1.21.13", "go1.22.12", "go1.23.12", "go1.24.13", "go1.25.14", "go1.26.8", "go1.27.3"}

// arm64Variants are the internally linked builds (an external link would
// need an aarch64 C toolchain): with .symtab and DWARF, stripped of both,
// as PIE and as stripped PIE.
var arm64Variants = []struct {
	name  string
	flags []string
}{
	{"plain", nil},
	{"stripped", []string{"-ldflags=-s -w"}},
	{"pie", []string{"-buildmode=pie"}},
	{"pie-stripped", []string{"-buildmode=pie", "-ldflags=-s -w"}},
}

var (
	arm64Once sync.Once
	arm64Exes map[string]map[string]string // Go release -> variant -> path
	arm64Err  error
)

// arm64Builds builds every release's variants once, two at a time (the
// machines have 2 cores), into a directory removed when the tests end.
func arm64Builds(t *testing.T) map[string]map[string]string {
	t.Helper()
	arm64Once.Do(func() {
		dir, err := os.MkdirTemp("", "inspect-arm64-")
		if err != nil {
			arm64Err = err
			return
		}
		arm64Dirs = append(arm64Dirs, dir)
		arm64Exes = make(map[string]map[string]string)
		var (
			mu   sync.Mutex
			wg   sync.WaitGroup
			errs []string
			sem  = make(chan struct{}, 2)
		)
		// Every release's map exists before the builders start: they only
		// fill them, under mu.
		for _, goVer := range arm64Go {
			arm64Exes[goVer] = make(map[string]string)
		}
		for _, goVer := range arm64Go {
			wg.Go(func() {
				sem <- struct{}{}
				defer func() { <-sem }()
				for _, v := range arm64Variants {
					d := filepath.Join(dir, goVer, v.name)
					if err := os.MkdirAll(d, 0o755); err != nil {
						mu.Lock()
						errs = append(errs, err.Error())
						mu.Unlock()
						return
					}
					path, err := inspecttest.Build(d, inspecttest.Options{Toolchain: goVer, Arch: "arm64", Flags: v.flags})
					mu.Lock()
					if err != nil {
						errs = append(errs, fmt.Sprintf("build %s %s: %v", goVer, v.name, err))
					} else {
						arm64Exes[goVer][v.name] = path
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if len(errs) > 0 {
			arm64Err = fmt.Errorf("%s", strings.Join(errs, "\n"))
		}
	})
	if arm64Err != nil {
		t.Fatal(arm64Err)
	}
	return arm64Exes
}

// arm64Dirs are removed by TestMain's caller through cleanupArm64.
var arm64Dirs []string

func cleanupArm64() {
	for _, d := range arm64Dirs {
		os.RemoveAll(d)
	}
}

// TestArm64 opens linux/arm64 binaries of every supported Go release and
// checks what the probes are given against what the binary itself says
// independently: function entries and sizes against DWARF, RET offsets
// against LLVM's disassembly of the function, the frame push against the
// instruction words, and the stripped and PIE builds against the plain one.
func TestArm64(t *testing.T) {
	if _, err := exec.LookPath("llvm-objdump"); err != nil {
		t.Fatalf("llvm-objdump (Debian package llvm, installed by make deps) checks the disassembly: %v", err)
	}
	exes := arm64Builds(t)
	for _, goVer := range arm64Go {
		t.Run(goVer, func(t *testing.T) {
			v := exes[goVer]
			bins := map[string]*inspect.Binary{}
			for _, variant := range arm64Variants {
				b := open(t, v[variant.name])
				if b.Arch != "arm64" {
					t.Errorf("%s: Arch = %q, want arm64", variant.name, b.Arch)
				}
				if b.GoVersion != goVer {
					t.Errorf("%s: GoVersion = %q, want %q", variant.name, b.GoVersion, goVer)
				}
				if want := strings.HasPrefix(variant.name, "pie"); b.PIE != want {
					t.Errorf("%s: PIE = %v, want %v", variant.name, b.PIE, want)
				}
				bins[variant.name] = b
			}
			entries := dwarfEntries(t, v["plain"], funcs)
			for _, name := range funcs {
				plain := arm64Func(t, bins["plain"], name)
				// DWARF's low_pc is the entry; its high_pc ends the last
				// instruction, before the zero words padding the next entry.
				e, ok := entries[name]
				if !ok {
					t.Errorf("%s: no DWARF subprogram", name)
				} else if plain.Addr != e[0] || plain.Size < e[1]-e[0] || plain.Size-(e[1]-e[0]) >= 16 {
					t.Errorf("%s: Func = %#x+%#x, DWARF says [%#x, %#x)", name, plain.Addr, plain.Size, e[0], e[1])
				}
				checkArm64Returns(t, bins["plain"], plain)
				// Without .symtab the function comes from .gopclntab: the
				// same entry, size and returns.
				if got := arm64Func(t, bins["stripped"], name); got != plain {
					t.Errorf("%s from .gopclntab: %+v, from .symtab: %+v", name, got, plain)
				}
				pie := arm64Func(t, bins["pie"], name)
				checkArm64Returns(t, bins["pie"], pie)
				if got := arm64Func(t, bins["pie-stripped"], name); got != pie {
					t.Errorf("%s from .gopclntab of the PIE: %+v, from .symtab: %+v", name, got, pie)
				}
				for _, variant := range []string{"stripped", "pie-stripped"} {
					f := arm64Func(t, bins[variant], name)
					r1, err1 := bins[variant].Returns(f)
					base := "plain"
					if variant == "pie-stripped" {
						base = "pie"
					}
					r2, err2 := bins[base].Returns(arm64Func(t, bins[base], name))
					if err1 != nil || err2 != nil || !slices.Equal(r1, r2) {
						t.Errorf("%s: Returns in %s = %v, %v; in %s = %v, %v", name, variant, r1, err1, base, r2, err2)
					}
				}
			}
			for _, variant := range arm64Variants {
				checkArm64PushFrame(t, bins[variant.name], "net/http.serverHandler.ServeHTTP", true)
				checkArm64PushFrame(t, bins[variant.name], "net/http.(*conn).serve", true)
			}
		})
	}
}

func arm64Func(t *testing.T, b *inspect.Binary, name string) inspect.Func {
	t.Helper()
	f, err := b.Func(name)
	if err != nil {
		t.Fatal(err)
	}
	if f.Name != name || f.Addr == 0 || f.Size == 0 || f.Size%4 != 0 || f.FileOffset == 0 {
		t.Fatalf("%s: Func(%s) = %+v", b.Path, name, f)
	}
	return f
}

// dwarfEntries gives [low_pc, high_pc) of the named functions' DWARF
// subprograms.
func dwarfEntries(t *testing.T, path string, names []string) map[string][2]uint64 {
	t.Helper()
	ef, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ef.Close()
	d, err := ef.DWARF()
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string][2]uint64)
	r := d.Reader()
	for {
		e, err := r.Next()
		if err != nil {
			t.Fatal(err)
		}
		if e == nil {
			break
		}
		if e.Tag != dwarf.TagSubprogram {
			continue
		}
		name, _ := e.Val(dwarf.AttrName).(string)
		if !slices.Contains(names, name) {
			continue
		}
		lo, ok := e.Val(dwarf.AttrLowpc).(uint64)
		if !ok {
			continue
		}
		var hi uint64
		switch v := e.Val(dwarf.AttrHighpc).(type) {
		case uint64:
			hi = v
		case int64:
			hi = lo + uint64(v)
		}
		out[name] = [2]uint64{lo, hi}
	}
	return out
}

// llvmLine matches an instruction of llvm-objdump's listing:
// "  1e8d4c: c0 03 5f d6   ret".
var llvmLine = regexp.MustCompile(`^\s*([0-9a-f]+):\s+(?:[0-9a-f]{2} ){4}\s*(\S+)`)

// disassemble lists f's instructions by LLVM's disassembler, which knows
// the whole A64 instruction set: address -> mnemonic.
func disassemble(t *testing.T, b *inspect.Binary, f inspect.Func) map[uint64]string {
	t.Helper()
	cmd := exec.Command("llvm-objdump", "-d", "-z", "--no-leading-headers", "--triple=aarch64-linux-gnu", "--mattr=+lse,+v8.5a",
		fmt.Sprintf("--start-address=%#x", f.Addr), fmt.Sprintf("--stop-address=%#x", f.Addr+f.Size), b.Path)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("llvm-objdump %s: %v", b.Path, err)
	}
	insts := make(map[uint64]string)
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		m := llvmLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		addr, err := strconv.ParseUint(m[1], 16, 64)
		if err != nil {
			t.Fatal(err)
		}
		insts[addr] = m[2]
	}
	if len(insts) != int(f.Size/4) {
		t.Fatalf("llvm-objdump listed %d instructions of %s (%d bytes)", len(insts), f.Name, f.Size)
	}
	return insts
}

// checkArm64Returns checks Returns against the disassembly: every RET
// LLVM lists, and nothing else, with the file holding a RET word at each
// offset a probe is placed at.
func checkArm64Returns(t *testing.T, b *inspect.Binary, f inspect.Func) {
	t.Helper()
	rets, err := b.Returns(f)
	if err != nil {
		t.Fatal(err)
	}
	var want []uint64
	for addr, op := range disassemble(t, b, f) {
		if op == "ret" {
			want = append(want, addr-f.Addr)
		}
	}
	slices.Sort(want)
	if len(want) == 0 || !slices.Equal(rets, want) {
		t.Errorf("%s in %s: Returns = %#x, LLVM's disassembly has RET at %#x", f.Name, b.Path, rets, want)
	}
	raw, err := os.ReadFile(b.Path)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rets {
		if w := binary.LittleEndian.Uint32(raw[f.FileOffset+r:]); w != 0xd65f03c0 {
			t.Errorf("%s: word at file offset %#x is %#08x, want ret (0xd65f03c0)", f.Name, f.FileOffset+r, w)
		}
	}
}

// checkArm64PushFrame checks that PushFrame places the probe on the store
// of the link register that allocates the frame ("str x30, [sp, #-N]!", or
// the "sub x20, sp, #N" of a frame too large for it), after nothing but
// the stack-bound check.
func checkArm64PushFrame(t *testing.T, b *inspect.Binary, name string, want bool) {
	t.Helper()
	f := arm64Func(t, b, name)
	off, ok := b.PushFrame(f)
	if ok != want {
		t.Fatalf("%s in %s: PushFrame = %d, %v; want found = %v", name, b.Path, off, ok, want)
	}
	if !ok {
		return
	}
	insts := disassemble(t, b, f)
	raw, err := os.ReadFile(b.Path)
	if err != nil {
		t.Fatal(err)
	}
	w := binary.LittleEndian.Uint32(raw[f.FileOffset+off:])
	op := insts[f.Addr+off]
	// str x30, [sp, #-N]!: STR (immediate, pre-index) of X30 with base SP.
	push := op == "str" && w&0xffe00c1f == 0xf8000c1e && (w>>5)&31 == 31
	large := op == "sub" && w&0xff8003ff == 0xd10003f4
	if !push && !large {
		t.Errorf("%s in %s: PushFrame at +%d is %s (%#08x), not the frame push", name, b.Path, off, op, w)
	}
	// Before it: ldr x16, [x28, #16]; cmp sp, x16; b.ls (and, for a large
	// frame, the sub/subs and b.lo computing SP-N).
	for a := f.Addr; a < f.Addr+off; a += 4 {
		switch insts[a] {
		case "ldr", "cmp", "b.ls", "b.lo", "sub", "subs", "mov":
		default:
			t.Errorf("%s in %s: %s at +%d precedes the frame push", name, b.Path, insts[a], a-f.Addr)
		}
	}
}
