package agent

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"testing"

	"github.com/golens/golens/probes/kernel"
)

// A New that fails after binding its listeners releases them, and says why
// by class: a bad exporter is ErrUsage (exit 64), a busy metrics port is
// neither usage nor kernel (exit 1).
func TestNewFailsClean(t *testing.T) {
	if err := kernel.ProbeRunning().Check(false); err != nil {
		t.Skipf("this kernel cannot run golens: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cfg := DefaultConfig()
	cfg.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg.MetricsAddr, cfg.SamplingServerAddr, cfg.Exporter = addr, "127.0.0.1:0", "bogus"
	if _, err := New(cfg); !errors.Is(err, ErrUsage) || errors.Is(err, ErrKernel) {
		t.Fatalf("unknown exporter: %v, want ErrUsage", err)
	}
	ln, err = net.Listen("tcp", addr) // free again
	if err != nil {
		t.Fatalf("metrics listener left open after New failed: %v", err)
	}
	defer ln.Close()
	cfg.Exporter = "console"
	if _, err := New(cfg); err == nil || errors.Is(err, ErrUsage) || errors.Is(err, ErrKernel) {
		t.Fatalf("busy metrics port: %v, want an error of neither class", err)
	}
}
