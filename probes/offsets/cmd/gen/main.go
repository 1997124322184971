// Command gen writes the offsets tables. For each Go release it builds a
// small net/http server with that toolchain (GOTOOLCHAIN, which downloads it
// if needed) and reads the offsets of the standard library and runtime
// fields the probes need from its DWARF: the Go table. For each grpc-go
// release it builds a small gRPC server and client against that release and
// reads the offsets of the grpc-go and genproto fields: the module table,
// keyed by module version. Both are written as Go source.
//
// Usage, from probes/offsets:
//
//	go run ./cmd/gen [-o table_gen.go] [-go go1.21.13,...] [-mo modules_gen.go] [-grpc v1.60.1,...] [-genproto v0.0.0-...,...]
//
// An empty -o or -mo leaves that table as it is.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"go/format"
	"go/version"
	"log/slog"
	"os"
	"strings"

	"github.com/golens/golens/probes/inspect"
	"github.com/golens/golens/probes/inspect/inspecttest"
)

// toolchains are the releases the table covers: the latest patch release of
// each minor release the probes support.
var toolchains = []string{
	"go1.21.13",
	"go1.22.12",
	"go1.23.12",
	"go1.24.13",
	"go1.25.14",
	"go1.26.8",
	"go1.27.3",
}

// fields are the struct fields the probes read, by struct. A release that
// lacks one (Request.Pattern before Go 1.23, runtime.hmap from Go 1.26, when
// GOEXPERIMENT=noswissmap went away) simply has no entry for it.
var fields = []struct {
	strct string
	names []string
}{
	{"net/http.Request", []string{"Method", "URL", "Proto", "ProtoMajor", "ProtoMinor", "Header", "Host", "RemoteAddr", "RequestURI", "Pattern", "ctx"}},
	{"net/url.URL", []string{"Scheme", "Host", "Path", "RawQuery"}},
	{"net/http.response", []string{"status", "req", "conn", "wroteHeader", "cw"}},
	{"net/http.chunkWriter", []string{"wroteHeader"}},
	{"net/http.http2responseWriterState", []string{"req", "status", "sentHeader", "stream"}},
	{"net/http.http2stream", []string{"id"}},
	{"net/http/internal/http2.responseWriterState", []string{"req", "status", "sentHeader", "stream"}},
	{"net/http/internal/http2.stream", []string{"id"}},
	{"net/http/internal/http2.ServerRequest", []string{"URL"}},
	{"runtime.hmap", []string{"count", "B", "buckets", "oldbuckets", "noverflow"}},
	{"net/http.Response", []string{"StatusCode"}},
	{"runtime.g", []string{"goid", "parentGoid", "stack", "_panic", "sigcode0"}},
	{"runtime.stack", []string{"hi"}},
	{"runtime._panic", []string{"sp"}},
	{"net.TCPAddr", []string{"IP", "Port"}},
	{"net.TCPConn", []string{"conn"}},
	{"net.conn", []string{"fd"}},
	{"net.netFD", []string{"family", "sotype", "net", "laddr", "raddr"}},
	{"crypto/tls.Conn", []string{"conn"}},
	{"net/http.persistConn", []string{"conn", "alt"}},
	{"net/http.http2ClientConn", []string{"tconn"}},
	{"net/http.http2clientStream", []string{"cc", "ID"}},
	{"net/http/internal/http2.ClientConn", []string{"tconn"}},
	{"net/http/internal/http2.clientStream", []string{"cc", "ID"}},
	{"internal/runtime/maps.Map", []string{"used", "dirPtr", "dirLen"}},
	{"internal/runtime/maps.table", []string{"used", "capacity", "groups"}},
	{"internal/runtime/maps.groupsReference", []string{"data", "lengthMask"}},
}

func main() {
	out := flag.String("o", "table_gen.go", "file to write the Go table to; empty for none")
	gos := flag.String("go", strings.Join(toolchains, ","), "comma-separated Go toolchains to build with")
	modOut := flag.String("mo", "modules_gen.go", "file to write the module table to; empty for none")
	grpcs := flag.String("grpc", strings.Join(grpcVersions, ","), "comma-separated grpc-go versions to build against")
	genprotos := flag.String("genproto", strings.Join(genprotoVersions, ","), "comma-separated further "+genprotoModule+" versions")
	flag.Parse()
	tcs := strings.Split(*gos, ",")
	if *out != "" {
		if err := run(*out, tcs); err != nil {
			fmt.Fprintln(os.Stderr, "gen:", err)
			os.Exit(1)
		}
	}
	if *modOut != "" {
		if err := runModules(*modOut, tcs, split(*grpcs), split(*genprotos)); err != nil {
			fmt.Fprintln(os.Stderr, "gen:", err)
			os.Exit(1)
		}
	}
}

func split(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

type release struct {
	toolchain string
	offsets   map[[2]string]uint64
}

func run(out string, toolchains []string) error {
	var releases []release
	seen := make(map[string]string)
	for _, tc := range toolchains {
		minor := version.Lang(tc)
		if minor == "" {
			return fmt.Errorf("%q is not a Go release", tc)
		}
		if prev, dup := seen[minor]; dup {
			return fmt.Errorf("%s and %s are both %s: the table keeps one per minor release", prev, tc, minor)
		}
		seen[minor] = tc
		offs, err := read(tc)
		if err != nil {
			return err
		}
		slog.Info("read offsets", "go", tc, "fields", len(offs))
		releases = append(releases, release{tc, offs})
	}
	src, err := render(releases)
	if err != nil {
		return err
	}
	return os.WriteFile(out, src, 0o644)
}

// read builds the target with toolchain and reads the offsets of fields
// from its DWARF. Releases whose maps are Swiss tables but which still offer
// the classic layout (GOEXPERIMENT=noswissmap, Go 1.24 and 1.25) are built
// a second time that way for runtime.hmap: a stripped noswissmap binary
// needs those offsets as much as an old release's does.
func read(toolchain string) (map[[2]string]uint64, error) {
	offs, err := readBuild(toolchain, "")
	if err != nil {
		return nil, err
	}
	if _, classic := offs[[2]string{"runtime.hmap", "buckets"}]; classic {
		return offs, nil
	}
	old, err := readBuild(toolchain, "noswissmap")
	if errors.Is(err, errNoExperiment) {
		return offs, nil
	}
	if err != nil {
		return nil, err
	}
	for k, v := range old {
		if k[0] == "runtime.hmap" {
			offs[k] = v
		}
	}
	return offs, nil
}

// errNoExperiment: the toolchain does not know the GOEXPERIMENT asked for.
var errNoExperiment = errors.New("unknown GOEXPERIMENT")

func readBuild(toolchain, experiment string) (map[[2]string]uint64, error) {
	dir, err := os.MkdirTemp("", "offsets-gen-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	exe, err := inspecttest.Build(dir, inspecttest.Options{Toolchain: toolchain, Experiment: experiment})
	if err != nil {
		if experiment != "" && strings.Contains(err.Error(), "unknown GOEXPERIMENT") {
			return nil, errNoExperiment
		}
		return nil, err
	}
	b, err := inspect.Open(exe)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	// A go.mod or GOTOOLCHAIN setting elsewhere must not have swapped the
	// toolchain: the table would be filed under the wrong release.
	if v, _, _ := strings.Cut(b.GoVersion, " "); v != toolchain {
		return nil, fmt.Errorf("built with GOTOOLCHAIN=%s, got a binary of %s", toolchain, b.GoVersion)
	}
	offs := make(map[[2]string]uint64)
	for _, s := range fields {
		for _, name := range s.names {
			off, err := b.FieldOffset(s.strct, name)
			if errors.Is(err, inspect.ErrNoField) {
				continue
			}
			if err != nil {
				return nil, err
			}
			offs[[2]string{s.strct, name}] = off
		}
	}
	return offs, nil
}

func render(releases []release) ([]byte, error) {
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "// Code generated by go run ./cmd/gen; DO NOT EDIT.\n\n")
	fmt.Fprintf(&buf, "package offsets\n\n")
	fmt.Fprintf(&buf, "// fields are the fields the table covers.\nvar fields = []Field{\n")
	for _, s := range fields {
		for _, name := range s.names {
			fmt.Fprintf(&buf, "\t{%q, %q},\n", s.strct, name)
		}
	}
	fmt.Fprintf(&buf, "}\n\n")
	fmt.Fprintf(&buf, "// table maps a Go minor release to the offsets of its fields, as read\n")
	fmt.Fprintf(&buf, "// from the DWARF of a binary built by the toolchain named in each comment.\n")
	fmt.Fprintf(&buf, "var table = map[string]map[Field]uint64{\n")
	for _, r := range releases {
		fmt.Fprintf(&buf, "\t%q: { // %s\n", version.Lang(r.toolchain), r.toolchain)
		for _, s := range fields {
			for _, name := range s.names {
				if off, ok := r.offsets[[2]string{s.strct, name}]; ok {
					fmt.Fprintf(&buf, "\t\t{%q, %q}: %d,\n", s.strct, name, off)
				}
			}
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
