package probes_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/golens/golens/probes"
	"github.com/golens/golens/probes/event"
	"github.com/golens/golens/probes/goruntime"
	"github.com/golens/golens/probes/inspect/inspecttest"
	"github.com/golens/golens/probes/nethttp"
)

// A target detached while it runs, right after serving requests, still
// has every one of them delivered, decoded as its own; attached again at
// once under another identity (as a process reusing its pid would be),
// none of the earlier events is taken for the new one's, and the new
// one's are all its own.
func TestDetachDeliversLastEvents(t *testing.T) {
	needEBPF(t)
	exe, err := inspecttest.Build(t.TempDir(), inspecttest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	cmd := exec.Command(exe, addr)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	pid := cmd.Process.Pid

	var (
		mu  sync.Mutex
		got = map[string]int{} // service name -> server events
	)
	m := startManager(t, func(ev event.Event) {
		if e, ok := ev.(*event.HTTPServer); ok {
			mu.Lock()
			got[e.Process.ServiceName]++
			mu.Unlock()
		}
	})
	const n = 20
	for _, service := range []string{"first", "second"} {
		if _, err := m.Attach(pid, &event.Process{PID: pid, ServiceName: service}); err != nil {
			t.Fatal(err)
		}
		// The reader is idle (its poll backed off) when the requests come.
		time.Sleep(1500 * time.Millisecond)
		for i := 0; i < n; i++ {
			resp, err := http.Get(fmt.Sprintf("http://%s/%s-%d", addr, service, i))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
		}
		if err := m.Detach(pid); err != nil {
			t.Fatal(err)
		}
		// Detach returns once the target's events are delivered.
		mu.Lock()
		if got[service] != n {
			t.Errorf("%s: %d server events delivered by Detach, want %d", service, got[service], n)
		}
		mu.Unlock()
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 {
		t.Errorf("events by service %v, want only first and second", got)
	}
	if s := m.Stats(); s.DecodeErrors != 0 {
		t.Errorf("%d decode errors, want 0", s.DecodeErrors)
	}
}

func needEBPF(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("eBPF tests need root in CI")
		}
		t.Skip("needs root for eBPF")
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startManager runs a manager of the net/http and runtime probes until the
// test ends.
func startManager(t *testing.T, h probes.Handler, features ...string) *probes.Manager {
	t.Helper()
	m := probes.NewManager([]probes.Spec{nethttp.Probe, goruntime.Probe}, features, h, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		m.Close()
	})
	return m
}
