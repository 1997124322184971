package main

import (
	"bytes"
	"errors"
	"fmt"
	"go/format"
	"go/version"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/golens/golens/probes/inspect"
	"github.com/golens/golens/probes/inspect/inspecttest"
)

const (
	grpcModule     = inspecttest.GRPCModule
	genprotoModule = "google.golang.org/genproto/googleapis/rpc"
)

// grpcVersions are the grpc-go releases the module table covers: the latest
// patch release of every minor release from v1.60, the oldest the gRPC
// probes support, to the newest.
var grpcVersions = []string{
	"v1.60.1", "v1.61.1", "v1.62.1", "v1.63.2", "v1.64.1", "v1.65.1", "v1.66.2",
	"v1.67.3", "v1.68.1", "v1.69.4", "v1.70.0", "v1.71.1", "v1.72.2", "v1.73.0",
	"v1.74.3", "v1.75.1", "v1.76.0", "v1.77.0", "v1.78.0", "v1.79.3", "v1.80.0",
	"v1.81.1", "v1.82.1", "v1.83.2", "v1.84.0", "v1.85.0",
}

// genprotoVersions are further versions of genprotoModule, each built with
// the newest grpc-go. A program may well use a newer genproto than its
// grpc-go requires, and the grpc-go releases' own requirements reach only
// as far as the newest release's go.mod; genproto has no releases, so the
// table knows only the pseudo-versions it has seen and those between two
// of them that agree.
var genprotoVersions = []string{
	"v0.0.0-20260928230214-8a89bd6388cc",
}

// moduleFields are the fields of grpc-go and genproto structs the probes in
// probes/grpc read, by struct, with the module that provides its package.
// A version that lacks one simply has no entry for it.
var moduleFields = []struct {
	module string
	strct  string
	names  []string
}{
	{grpcModule, grpcModule + "/internal/transport.Stream", []string{"method", "ctx", "id"}},
	{grpcModule, grpcModule + "/internal/transport.loopyWriter", []string{"conn"}},
	{grpcModule, grpcModule + "/internal/transport.http2Server", []string{"peer"}},
	{grpcModule, grpcModule + "/internal/transport.http2Client", []string{"localAddr", "remoteAddr"}},
	{grpcModule, grpcModule + "/internal/transport.headerFrame", []string{"streamID", "hf", "onOrphaned"}},
	{grpcModule, grpcModule + "/internal/transport.clientHeaders", []string{"streamID", "hf", "onOrphaned"}},
	{grpcModule, grpcModule + "/internal/status.Status", []string{"s"}},
	{grpcModule, grpcModule + ".ClientConn", []string{"target"}},
	{grpcModule, grpcModule + "/internal/transport.CallHdr", []string{"Method"}},
	{grpcModule, grpcModule + ".clientStream", []string{"ctx", "callHdr", "cc", "attempt", "finished"}},
	{grpcModule, grpcModule + ".csAttempt", []string{"t", "transport", "s", "transportStream"}},
	{genprotoModule, genprotoModule + "/status.Status", []string{"Code"}},
}

// moduleBuild is what one build of the gRPC target said.
type moduleBuild struct {
	goLine   string            // the go line its go.mod ended with
	versions map[string]string // module path -> version, from build info
	offsets  map[[2]string]uint64
}

// moduleEntry is one version key of one module in the table.
type moduleEntry struct {
	key     string
	from    []string // the builds that gave it
	offsets map[[2]string]uint64
}

func runModules(out string, toolchains, grpcs, genprotos []string) error {
	if len(grpcs) == 0 {
		return errors.New("no grpc-go versions to build against")
	}
	newest := slices.MaxFunc(toolchains, version.Compare)
	table := map[string][]*moduleEntry{}
	add := func(b moduleBuild, from map[string]string) error {
		for _, mod := range []string{grpcModule, genprotoModule} {
			v := b.versions[mod]
			key := moduleKey(v)
			offs := make(map[[2]string]uint64)
			for _, s := range moduleFields {
				if s.module != mod {
					continue
				}
				for _, name := range s.names {
					if off, ok := b.offsets[[2]string{s.strct, name}]; ok {
						offs[[2]string{s.strct, name}] = off
					}
				}
			}
			i := slices.IndexFunc(table[mod], func(e *moduleEntry) bool { return e.key == key })
			if i < 0 {
				table[mod] = append(table[mod], &moduleEntry{key: key, from: []string{from[mod]}, offsets: offs})
				continue
			}
			e := table[mod][i]
			// Patch releases are filed under their minor release: they must
			// agree, or the table could not be keyed so.
			if !maps.Equal(e.offsets, offs) {
				return fmt.Errorf("%s %s: %s and %s give different offsets: %v, %v", mod, key, e.from, from[mod], e.offsets, offs)
			}
			e.from = append(e.from, from[mod])
		}
		return nil
	}

	for _, g := range grpcs {
		b, tcs, err := readModulesChecked(g, nil, toolchains, newest)
		if err != nil {
			return err
		}
		err = add(b, map[string]string{
			grpcModule:     fmt.Sprintf("%s with genproto %s, by %s", g, b.versions[genprotoModule], strings.Join(tcs, " and ")),
			genprotoModule: "grpc " + g,
		})
		if err != nil {
			return err
		}
	}
	last := slices.MaxFunc(grpcs, compareRelease)
	for _, gp := range genprotos {
		b, _, err := readModulesChecked(last, []string{genprotoModule + "@" + gp}, toolchains, newest)
		if err != nil {
			return err
		}
		err = add(b, map[string]string{
			grpcModule:     fmt.Sprintf("%s with genproto %s", last, gp),
			genprotoModule: "grpc " + last,
		})
		if err != nil {
			return err
		}
	}
	src, err := renderModules(table)
	if err != nil {
		return err
	}
	return os.WriteFile(out, src, 0o644)
}

// readModulesChecked builds the gRPC target against grpc (and require) with
// the newest toolchain, and again with the oldest of toolchains that the
// modules accept; both must give the same offsets, since the table is keyed
// by module version alone. It returns the toolchains it used.
func readModulesChecked(grpc string, require, toolchains []string, newest string) (moduleBuild, []string, error) {
	b, err := readModules(grpc, require, newest)
	if err != nil {
		return b, nil, err
	}
	oldest := ""
	for _, tc := range toolchains {
		if version.Compare(tc, "go"+b.goLine) >= 0 && (oldest == "" || version.Compare(tc, oldest) < 0) {
			oldest = tc
		}
	}
	if oldest == "" || oldest == newest {
		return b, []string{newest}, nil
	}
	old, err := readModules(grpc, require, oldest)
	if err != nil {
		return b, nil, err
	}
	if !maps.Equal(b.offsets, old.offsets) || !maps.Equal(b.versions, old.versions) {
		return b, nil, fmt.Errorf("grpc %s: %s and %s disagree: %v %v, %v %v; the table cannot be keyed by module version alone",
			grpc, newest, oldest, b.versions, b.offsets, old.versions, old.offsets)
	}
	return b, []string{newest, oldest}, nil
}

var goLineRe = regexp.MustCompile(`(?m)^go ([0-9.]+)\s*$`)

// readModules builds the gRPC target against grpc-go version grpc and the
// further requirements with toolchain, and reads the offsets of
// moduleFields from its DWARF.
func readModules(grpc string, require []string, toolchain string) (moduleBuild, error) {
	start := time.Now()
	var b moduleBuild
	dir, err := os.MkdirTemp("", "offsets-gen-")
	if err != nil {
		return b, err
	}
	defer os.RemoveAll(dir)
	exe, err := inspecttest.Build(dir, inspecttest.Options{Toolchain: toolchain, GRPC: grpc, Require: require})
	if err != nil {
		return b, err
	}
	mod, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil {
		return b, err
	}
	m := goLineRe.FindSubmatch(mod)
	if m == nil {
		return b, fmt.Errorf("grpc %s: no go line in\n%s", grpc, mod)
	}
	b.goLine = string(m[1])
	bin, err := inspect.Open(exe)
	if err != nil {
		return b, err
	}
	defer bin.Close()
	if bin.GoVersion != toolchain {
		return b, fmt.Errorf("built with GOTOOLCHAIN=%s, got a binary of %s", toolchain, bin.GoVersion)
	}
	// The go command must have used exactly the versions asked for: the
	// table is filed under them.
	want := map[string]string{grpcModule: grpc}
	for _, r := range require {
		path, v, _ := strings.Cut(r, "@")
		want[path] = v
	}
	for path, v := range want {
		if got := bin.Modules[path]; got != v {
			return b, fmt.Errorf("built against %s@%s, got a binary with %q", path, v, got)
		}
	}
	b.versions = make(map[string]string)
	b.offsets = make(map[[2]string]uint64)
	for _, s := range moduleFields {
		v, ok := bin.Modules[s.module]
		if !ok {
			return b, fmt.Errorf("grpc %s: the binary has no module %s", grpc, s.module)
		}
		b.versions[s.module] = v
		for _, name := range s.names {
			off, err := bin.FieldOffset(s.strct, name)
			if errors.Is(err, inspect.ErrNoField) {
				slog.Warn("field not in DWARF", "grpc", grpc, "go", toolchain, "struct", s.strct, "field", name)
				continue
			}
			if err != nil {
				return b, err
			}
			b.offsets[[2]string{s.strct, name}] = off
		}
	}
	slog.Info("read module offsets", "grpc", grpc, "require", require, "go", toolchain,
		"genproto", b.versions[genprotoModule], "goline", b.goLine, "fields", len(b.offsets), "took", time.Since(start).Round(time.Millisecond))
	return b, nil
}

var releaseRe = regexp.MustCompile(`^(v[0-9]+\.[0-9]+)\.[0-9]+$`)

// moduleKey is the key a module version is filed under, as LookupModule
// looks it up: the minor release of a release, a pseudo-version itself. The
// generator does not import package offsets: it must build while the table
// it writes is broken.
func moduleKey(v string) string {
	if m := releaseRe.FindStringSubmatch(v); m != nil {
		return m[1]
	}
	return v
}

// compareRelease orders vX.Y.Z releases; a Go version comparison does that
// once the "v" is a "go".
func compareRelease(a, b string) int {
	return version.Compare("go"+strings.TrimPrefix(a, "v"), "go"+strings.TrimPrefix(b, "v"))
}

func renderModules(table map[string][]*moduleEntry) ([]byte, error) {
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "// Code generated by go run ./cmd/gen; DO NOT EDIT.\n\n")
	fmt.Fprintf(&buf, "package offsets\n\n")
	fmt.Fprintf(&buf, "// moduleFields are the fields of module structs the module table covers.\nvar moduleFields = []Field{\n")
	for _, s := range moduleFields {
		for _, name := range s.names {
			fmt.Fprintf(&buf, "\t{%q, %q},\n", s.strct, name)
		}
	}
	fmt.Fprintf(&buf, "}\n\n")
	fmt.Fprintf(&buf, "// modules maps a module to the versions the table covers and each version\n")
	fmt.Fprintf(&buf, "// to the offsets of its fields, as read from the DWARF of the gRPC target\n")
	fmt.Fprintf(&buf, "// built as each comment says. A release is filed under its minor release,\n")
	fmt.Fprintf(&buf, "// a pseudo-version under itself.\n")
	fmt.Fprintf(&buf, "var modules = map[string]map[string]map[Field]uint64{\n")
	for _, mod := range slices.Sorted(maps.Keys(table)) {
		fmt.Fprintf(&buf, "\t%q: {\n", mod)
		for _, e := range table[mod] {
			fmt.Fprintf(&buf, "\t\t%q: { // %s\n", e.key, strings.Join(e.from, "; "))
			for _, s := range moduleFields {
				for _, name := range s.names {
					if off, ok := e.offsets[[2]string{s.strct, name}]; ok {
						fmt.Fprintf(&buf, "\t\t\t{%q, %q}: %d,\n", s.strct, name, off)
					}
				}
			}
			fmt.Fprintf(&buf, "\t\t},\n")
		}
		fmt.Fprintf(&buf, "\t},\n")
	}
	fmt.Fprintf(&buf, "}\n")
	src, err := format.Source(buf.Bytes())
	if err != nil {
		return nil, fmt.Errorf("format generated code: %w\n%s", err, buf.Bytes())
	}
	return src, nil
}
