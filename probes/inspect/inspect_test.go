package inspect_test

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"unsafe"

	"github.com/golens/golens/probes/inspect"
	"github.com/golens/golens/probes/inspect/inspecttest"
)

// The target built in each way a probe meets binaries: by the internal and
// by an external linker (as anything using cgo is), as executable and as PIE,
// with and without .symtab and DWARF.
var variants = []struct {
	name  string
	flags []string
	cgo   bool
}{
	{"plain", nil, false},
	{"stripped", []string{"-ldflags=-s -w"}, false},
	{"pie", []string{"-buildmode=pie"}, false},
	{"pie-stripped", []string{"-buildmode=pie", "-ldflags=-s -w"}, false},
	{"external", []string{"-ldflags=-linkmode=external"}, true},
	{"external-stripped", []string{"-ldflags=-s -w -linkmode=external"}, true},
	{"external-pie", []string{"-buildmode=pie", "-ldflags=-linkmode=external"}, true},
	{"external-pie-stripped", []string{"-buildmode=pie", "-ldflags=-s -w -linkmode=external"}, true},
}

// exes holds the path of each variant built, by name. Variants that need a C
// toolchain are missing without one.
var exes = map[string]string{}

// plainExe, strippedExe and pieExe are the internally linked variants.
var plainExe, strippedExe, pieExe string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "inspect-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	defer cleanupArm64()
	_, ccErr := exec.LookPath("gcc")
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, v := range variants {
		if v.cgo && ccErr != nil {
			fmt.Fprintf(os.Stderr, "not building %s target: %v\n", v.name, ccErr)
			continue
		}
		wg.Go(func() {
			d := filepath.Join(dir, v.name)
			err := os.Mkdir(d, 0o755)
			var path string
			if err == nil {
				path, err = inspecttest.Build(d, inspecttest.Options{Flags: v.flags, Cgo: v.cgo})
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("build %s target: %w", v.name, err))
				return
			}
			exes[v.name] = path
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		fmt.Fprintln(os.Stderr, errors.Join(errs...))
		return 1
	}
	plainExe, strippedExe, pieExe = exes["plain"], exes["stripped"], exes["pie"]
	return m.Run()
}

func open(t *testing.T, path string) *inspect.Binary {
	t.Helper()
	b, err := inspect.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func TestOpen(t *testing.T) {
	for _, tc := range []struct {
		name string
		path string
		pie  bool
	}{
		{"plain", plainExe, false},
		{"stripped", strippedExe, false},
		{"pie", pieExe, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := open(t, tc.path)
			if b.GoVersion != runtime.Version() {
				t.Errorf("GoVersion = %q, want %q", b.GoVersion, runtime.Version())
			}
			if b.PIE != tc.pie {
				t.Errorf("PIE = %v, want %v", b.PIE, tc.pie)
			}
			if _, ok := b.Modules["example.com/target"]; !ok {
				t.Errorf("Modules = %v, want the main module example.com/target", b.Modules)
			}
			if got := b.Settings["CGO_ENABLED"]; got != "0" {
				t.Errorf("Settings[CGO_ENABLED] = %q, want 0", got)
			}
			if !b.GoVersionAtLeast(21) {
				t.Errorf("GoVersionAtLeast(21) = false for %s", b.GoVersion)
			}
		})
	}
}

func TestOpenNotGo(t *testing.T) {
	for _, path := range []string{"/bin/true", "inspect.go"} {
		if _, err := os.Stat(path); err != nil {
			t.Logf("skip %s: %v", path, err)
			continue
		}
		b, err := inspect.Open(path)
		if err == nil {
			b.Close()
			t.Errorf("Open(%s) succeeded, want ErrNotGo", path)
			continue
		}
		if !errors.Is(err, inspect.ErrNotGo) {
			t.Errorf("Open(%s) = %v, want ErrNotGo", path, err)
		}
	}
	if _, err := inspect.Open(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Open(missing) = %v, want ErrNotExist", err)
	}
}

func TestGoVersionAtLeast(t *testing.T) {
	for _, tc := range []struct {
		version string
		minor   int
		want    bool
	}{
		{"go1.23.4", 23, true},
		{"go1.23.4", 24, false},
		{"go1.23.4", 21, true},
		{"go1.24rc1", 24, true},
		{"go1.24rc1", 25, false},
		{"go1.24", 24, true},
		{"go1.22.0 X:nocoverageredesign", 22, true},
		{"go1.9.7", 21, false},
		{"devel go1.27-0123456789 Mon Jan 1 00:00:00 2026 +0000", 99, true},
		{"", 1, false},
		{"nonsense", 1, false},
	} {
		b := &inspect.Binary{GoVersion: tc.version}
		if got := b.GoVersionAtLeast(tc.minor); got != tc.want {
			t.Errorf("GoVersionAtLeast(%d) for %q = %v, want %v", tc.minor, tc.version, got, tc.want)
		}
	}
}

// funcs are functions a probe hooks: a plain function, a method on a value
// and one on a pointer.
var funcs = []string{
	"net/http.serverHandler.ServeHTTP",
	"net/http.(*response).WriteHeader",
	"net/http.(*conn).serve",
	"main.handle",
}

// TestFunc finds functions in binaries with .symtab and in the same
// binaries stripped of it, where they come from .gopclntab, and expects the
// same answers.
func TestFunc(t *testing.T) {
	for _, pair := range [][2]string{
		{"plain", "stripped"},
		{"pie", "pie-stripped"},
		{"external", "external-stripped"},
		{"external-pie", "external-pie-stripped"},
	} {
		t.Run(pair[1], func(t *testing.T) {
			if exes[pair[0]] == "" || exes[pair[1]] == "" {
				if os.Getenv("CI") != "" {
					t.Fatal("not built: no C toolchain")
				}
				t.Skip("not built: no C toolchain")
			}
			withSyms, stripped := open(t, exes[pair[0]]), open(t, exes[pair[1]])
			for _, name := range funcs {
				want := checkFunc(t, withSyms, name)
				got := checkFunc(t, stripped, name)
				if got != want {
					t.Errorf("%s from .gopclntab: %+v, from .symtab: %+v", name, got, want)
				}
			}
		})
	}
}

// checkFunc checks that f is found, that its offset maps into the file and
// that every RET Returns finds is a RET byte in the file.
func checkFunc(t *testing.T, b *inspect.Binary, name string) inspect.Func {
	t.Helper()
	if !b.HasFunc(name) {
		t.Errorf("%s: HasFunc(%s) = false", b.Path, name)
	}
	f, err := b.Func(name)
	if err != nil {
		t.Fatal(err)
	}
	if f.Name != name || f.Addr == 0 || f.Size == 0 || f.FileOffset == 0 {
		t.Fatalf("%s: Func(%s) = %+v", b.Path, name, f)
	}
	rets, err := b.Returns(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(rets) == 0 {
		t.Fatalf("%s: no RET in %s", b.Path, name)
	}
	file, err := os.Open(b.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	for _, r := range rets {
		if r >= f.Size {
			t.Errorf("%s: RET at +%#x past the end of %s (size %#x)", b.Path, r, name, f.Size)
			continue
		}
		var c [1]byte
		if _, err := file.ReadAt(c[:], int64(f.FileOffset+r)); err != nil {
			t.Fatal(err)
		}
		if c[0] != 0xC3 {
			t.Errorf("%s: byte at %s+%#x is %#x, want RET (0xc3)", b.Path, name, r, c[0])
		}
	}
	return f
}

func TestFuncMissing(t *testing.T) {
	for _, path := range []string{plainExe, strippedExe} {
		b := open(t, path)
		_, err := b.Func("net/http.noSuchFunction")
		if !errors.Is(err, inspect.ErrNoSymbol) {
			t.Errorf("%s: Func(missing) = %v, want ErrNoSymbol", path, err)
		}
		if b.HasFunc("net/http.noSuchFunction") {
			t.Errorf("%s: HasFunc(missing) = true", path)
		}
		// With a symbol table, a function it lacks is absent: the whole
		// function table (tens of MiB for a large binary, the agent's peak
		// memory) is read only for a stripped binary.
		if read, stripped := inspect.ReadPclntab(b), path == strippedExe; read != stripped {
			t.Errorf("%s: .gopclntab read %v after a missing function, want %v", path, read, stripped)
		}
	}
}

func TestFieldOffset(t *testing.T) {
	var (
		req  http.Request
		u    url.URL
		want = []struct {
			strct, field string
			offset       uintptr // what this toolchain, which built the targets, says
		}{
			{"net/http.Request", "Method", unsafe.Offsetof(req.Method)},
			{"net/http.Request", "URL", unsafe.Offsetof(req.URL)},
			{"net/http.Request", "Header", unsafe.Offsetof(req.Header)},
			{"net/http.Request", "Host", unsafe.Offsetof(req.Host)},
			{"net/http.Request", "RemoteAddr", unsafe.Offsetof(req.RemoteAddr)},
			{"net/http.Request", "Pattern", unsafe.Offsetof(req.Pattern)},
			{"net/url.URL", "Path", unsafe.Offsetof(u.Path)},
			{"net/url.URL", "RawQuery", unsafe.Offsetof(u.RawQuery)},
		}
	)
	plain, pie := open(t, plainExe), open(t, pieExe)
	if !plain.HasDWARF() || !pie.HasDWARF() {
		t.Fatal("HasDWARF() = false for a binary built without -w")
	}
	for _, w := range want {
		for _, b := range []*inspect.Binary{plain, pie} {
			got, err := b.FieldOffset(w.strct, w.field)
			if err != nil {
				t.Errorf("%s: %v", b.Path, err)
				continue
			}
			if got != uint64(w.offset) {
				t.Errorf("%s: FieldOffset(%s, %s) = %d, want %d", b.Path, w.strct, w.field, got, w.offset)
			}
		}
	}
	if got, err := plain.FieldOffset("net/http.Request", "Method"); err != nil || got != 0 {
		t.Errorf("FieldOffset(Request, Method) = %d, %v; want 0", got, err)
	}
	size, err := plain.StructSize("net/http.Request")
	if err != nil || size != uint64(unsafe.Sizeof(req)) {
		t.Errorf("StructSize(net/http.Request) = %d, %v; want %d", size, err, unsafe.Sizeof(req))
	}
}

// TestFieldOffsetUnexported compares what the plain and the PIE builds say of
// fields the test cannot take unsafe.Offsetof of.
func TestFieldOffsetUnexported(t *testing.T) {
	plain, pie := open(t, plainExe), open(t, pieExe)
	fields := [][2]string{
		{"net/http.response", "status"},
		{"net/http.response", "req"},
		{"net/http.Request", "ctx"},
		{"runtime.g", "goid"},
	}
	if plain.GoVersionAtLeast(24) {
		fields = append(fields,
			[2]string{"internal/runtime/maps.Map", "dirPtr"},
			[2]string{"internal/runtime/maps.table", "groups.data"},
		)
	} else {
		fields = append(fields, [2]string{"runtime.hmap", "buckets"})
	}
	for _, f := range fields {
		a, err := plain.FieldOffset(f[0], f[1])
		if err != nil {
			t.Error(err)
			continue
		}
		b, err := pie.FieldOffset(f[0], f[1])
		if err != nil {
			t.Error(err)
			continue
		}
		if a != b {
			t.Errorf("FieldOffset(%s, %s) = %d in the plain build, %d in the PIE build", f[0], f[1], a, b)
		}
	}
}

func TestFieldOffsetNested(t *testing.T) {
	b := open(t, plainExe)
	if !b.GoVersionAtLeast(24) {
		t.Skip("internal/runtime/maps is Go 1.24+")
	}
	groups, err := b.FieldOffset("internal/runtime/maps.table", "groups")
	if err != nil {
		t.Fatal(err)
	}
	mask, err := b.FieldOffset("internal/runtime/maps.groupsReference", "lengthMask")
	if err != nil {
		t.Fatal(err)
	}
	got, err := b.FieldOffset("internal/runtime/maps.table", "groups.lengthMask")
	if err != nil {
		t.Fatal(err)
	}
	if got != groups+mask {
		t.Errorf("FieldOffset(table, groups.lengthMask) = %d, want %d+%d", got, groups, mask)
	}
	// A pointer cannot be followed without reading memory.
	if _, err := b.FieldOffset("net/http.Request", "URL.Path"); err == nil || errors.Is(err, inspect.ErrNoField) {
		t.Errorf("FieldOffset(Request, URL.Path) = %v, want a not-by-value error", err)
	}
}

func TestFieldOffsetErrors(t *testing.T) {
	plain, stripped := open(t, plainExe), open(t, strippedExe)
	if stripped.HasDWARF() {
		t.Error("HasDWARF() = true for a binary built with -w")
	}
	if _, err := stripped.FieldOffset("net/http.Request", "Method"); !errors.Is(err, inspect.ErrNoDWARF) {
		t.Errorf("stripped: FieldOffset = %v, want ErrNoDWARF", err)
	}
	if _, err := stripped.StructSize("net/http.Request"); !errors.Is(err, inspect.ErrNoDWARF) {
		t.Errorf("stripped: StructSize = %v, want ErrNoDWARF", err)
	}
	for _, f := range [][2]string{
		{"net/http.Request", "NoSuchField"},
		{"net/http.NoSuchStruct", "Method"},
	} {
		if _, err := plain.FieldOffset(f[0], f[1]); !errors.Is(err, inspect.ErrNoField) {
			t.Errorf("FieldOffset(%s, %s) = %v, want ErrNoField", f[0], f[1], err)
		}
	}
}

func BenchmarkFieldOffsetIndex(b *testing.B) {
	for b.Loop() {
		bin, err := inspect.Open(plainExe)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := bin.FieldOffset("net/http.Request", "Method"); err != nil {
			b.Fatal(err)
		}
		bin.Close()
	}
}

// TestConcurrent asks one Binary from many goroutines at once, as the probe
// manager does, so that -race checks the lazily built indexes.
func TestConcurrent(t *testing.T) {
	b := open(t, plainExe)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if _, err := b.FieldOffset("net/http.Request", "Host"); err != nil {
				t.Error(err)
			}
			if _, err := b.Func("net/http.serverHandler.ServeHTTP"); err != nil {
				t.Error(err)
			}
			if _, err := b.Func("main.noSuchFunction"); !errors.Is(err, inspect.ErrNoSymbol) {
				t.Errorf("Func(missing) = %v, want ErrNoSymbol", err)
			}
		})
	}
	wg.Wait()
}

func TestPushFrame(t *testing.T) {
	for name, path := range map[string]string{"plain": plainExe, "stripped": strippedExe, "pie": pieExe} {
		b := open(t, path)
		fn, err := b.Func("net/http.serverHandler.ServeHTTP")
		if err != nil {
			t.Fatal(err)
		}
		off, ok := b.PushFrame(fn)
		if !ok || off == 0 || off >= fn.Size {
			t.Fatalf("%s: push at %d, %v", name, off, ok)
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := raw[fn.FileOffset+off]; got != 0x55 {
			t.Errorf("%s: byte at +%d is %#x, want 0x55 (push rbp)", name, off, got)
		}
	}
}

// ItabType reads the type word of an itab: the same descriptor whichever
// interface pairs the type with, inside the binary's type section, another
// for another type; nothing without a symbol table.
func TestItabType(t *testing.T) {
	for _, v := range variants {
		path, ok := exes[v.name]
		if !ok {
			continue
		}
		t.Run(v.name, func(t *testing.T) {
			b := open(t, path)
			conn, ok := b.ItabType("*net.TCPConn", "net.Conn")
			stripped := strings.Contains(strings.Join(v.flags, " "), "-s")
			if stripped {
				if ok {
					t.Errorf("stripped: ItabType = %#x, want none", conn)
				}
				return
			}
			if !ok {
				t.Fatal("no itab *net.TCPConn,net.Conn")
			}
			reader, ok := b.ItabType("*net.TCPConn", "io.Reader")
			if !ok || reader != conn {
				t.Errorf("*net.TCPConn's type through io.Reader %#x %v, through net.Conn %#x: want the same", reader, ok, conn)
			}
			start, ok1 := b.DataSymbol("runtime.types")
			end, ok2 := b.DataSymbol("runtime.etypes")
			if !ok1 || !ok2 || conn < start || conn >= end {
				t.Errorf("*net.TCPConn's type %#x outside the type section [%#x, %#x)", conn, start, end)
			}
			addr, ok := b.ItabType("*net.TCPAddr", "net.Addr")
			if !ok || addr == conn || addr < start || addr >= end {
				t.Errorf("*net.TCPAddr's type %#x %v: want another in [%#x, %#x)", addr, ok, start, end)
			}
			if _, ok := b.ItabType("*net.TCPConn", "no.Such"); ok {
				t.Error("an itab that does not exist was found")
			}
		})
	}
}
