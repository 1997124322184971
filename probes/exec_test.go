package probes_test

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/golens/golens/probes"
	"github.com/golens/golens/probes/event"
	"github.com/golens/golens/probes/inspect/inspecttest"
)

// launcherSource waits for SIGUSR1, then executes its arguments: a process
// that runs one Go program, then another under the same pid.
const launcherSource = `package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGUSR1)
	os.Stdout.WriteString("ready\n")
	<-sig
	panic(syscall.Exec(os.Args[1], os.Args[1:], os.Environ()))
}
`

// A target that executes another program between its inspection and the
// attach gets probes for what it runs then, at that program's offsets:
// the launcher (no net/http) is inspected, then it becomes an HTTP server;
// the attach is for the server, with its net/http probes, and a request to
// it arrives as an event with its path. (Before, the launcher's offsets
// went into the server, and it had no net/http probe.)
func TestExecDuringAttach(t *testing.T) {
	needEBPF(t)
	dir := t.TempDir()
	server, err := inspecttest.Build(t.TempDir(), inspecttest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	launcher := buildLauncher(t, dir)
	addr := freeAddr(t)
	cmd := exec.Command(launcher, server, addr)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	ready := make([]byte, 6)
	if _, err := io.ReadFull(out, ready); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid

	var (
		mu    sync.Mutex
		paths []string
	)
	m := startManager(t, func(ev event.Event) {
		if e, ok := ev.(*event.HTTPServer); ok {
			mu.Lock()
			paths = append(paths, e.Path)
			mu.Unlock()
		}
	})
	var once sync.Once
	probes.SetAfterInspect(m, func(int) {
		once.Do(func() {
			before, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
			cmd.Process.Signal(syscall.SIGUSR1)
			for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
				if now, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); now != before {
					return
				}
			}
			t.Error("the launcher did not execute the server")
		})
	})
	res, err := m.Attach(pid, &event.Process{PID: pid})
	if err != nil {
		t.Fatalf("attach: %v", err)
	}
	if !slices.Contains(res.Probes, "net/http") {
		t.Fatalf("probes %v: the server's net/http probes are missing (the launcher's binary was attached)", res.Probes)
	}
	var resp *http.Response
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if resp, err = http.Get("http://" + addr + "/after-exec"); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		mu.Lock()
		got := slices.Clone(paths)
		mu.Unlock()
		if slices.Equal(got, []string{"/after-exec"}) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("server events %q, want [/after-exec]", got)
		}
	}
}

func buildLauncher(t *testing.T, dir string) string {
	t.Helper()
	src := filepath.Join(dir, "launcher")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "main.go"), []byte(launcherSource), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "go.mod"), []byte("module launcher\n\ngo 1.21\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "launcher.bin")
	cmd := exec.Command("go", "build", "-o", out, ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOTOOLCHAIN=local", "GOWORK=off", "GOFLAGS=-buildvcs=false")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build launcher: %v\n%s", err, b)
	}
	return out
}
