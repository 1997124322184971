package probes_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/golens/golens/probes"
	grpcprobe "github.com/golens/golens/probes/grpc"
	"github.com/golens/golens/probes/inspect"
	"github.com/golens/golens/probes/inspect/inspecttest"
	"github.com/golens/golens/probes/nethttp"
)

// A stripped binary of a Go release the offsets table does not know is
// refused with ErrNoOffsets naming the field and the version: never a
// guessed offset. The same binary under its real version resolves.
func TestUnknownGoWithoutDWARFRefused(t *testing.T) {
	exe, err := inspecttest.Build(t.TempDir(), inspecttest.Options{Flags: []string{"-ldflags=-s -w"}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := inspect.Open(exe)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := probes.ResolveConstants(nethttp.Probe, b); err != nil {
		t.Fatalf("%s (known release) refused: %v", b.GoVersion, err)
	}
	b.GoVersion = "go1.99.0"
	_, err = probes.ResolveConstants(nethttp.Probe, b)
	if !errors.Is(err, probes.ErrNoOffsets) {
		t.Fatalf("go1.99.0 without DWARF: err %v, want ErrNoOffsets", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "go1.99.0") || !strings.Contains(msg, "no DWARF") {
		t.Errorf("refusal does not say what is missing: %s", msg)
	}
}

// The same for a library: a stripped gRPC program whose grpc-go release the
// table does not know is refused, naming the module version; under its real
// version it resolves from the table.
func TestUnknownGRPCWithoutDWARFRefused(t *testing.T) {
	exe, err := inspecttest.Build(t.TempDir(), inspecttest.Options{GRPC: "v1.84.0", Flags: []string{"-ldflags=-s -w"}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := inspect.Open(exe)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := probes.ResolveConstants(grpcprobe.Probe, b); err != nil {
		t.Fatalf("grpc-go %s (known) refused: %v", b.Modules["google.golang.org/grpc"], err)
	}
	b.Modules["google.golang.org/grpc"] = "v1.99.0"
	_, err = probes.ResolveConstants(grpcprobe.Probe, b)
	if !errors.Is(err, probes.ErrNoOffsets) || !strings.Contains(err.Error(), "v1.99.0") {
		t.Fatalf("grpc-go v1.99.0 without DWARF: %v, want ErrNoOffsets naming the version", err)
	}
}
