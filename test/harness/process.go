package harness

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// App is a running target program.
type App struct {
	Cmd  *exec.Cmd
	Addr string // host:port it serves on
}

// PID of the app.
func (a *App) PID() int { return a.Cmd.Process.Pid }

// StartApp runs a target built by BuildApp and waits for its "listening on"
// line.
func StartApp(path string, env []string, args ...string) (*App, error) {
	cmd := exec.Command(path, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	lines := bufio.NewScanner(out)
	addr := make(chan string, 1)
	go func() {
		for lines.Scan() {
			if a, ok := strings.CutPrefix(lines.Text(), "listening on "); ok {
				addr <- a
			}
		}
	}()
	select {
	case a := <-addr:
		return &App{Cmd: cmd, Addr: a}, nil
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		cmd.Wait()
		return nil, fmt.Errorf("%s did not report its address", path)
	}
}

// Stop ends the app.
func (a *App) Stop() {
	a.Cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { a.Cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		a.Cmd.Process.Kill()
		<-done
	}
}

// Agent is a running golens.
type Agent struct {
	Cmd         *exec.Cmd
	MetricsAddr string
	log         *syncBuffer
	done        chan struct{}
	exitErr     error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// FreeAddr returns a loopback address with a port free right now.
func FreeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// StartAgent runs golens with args plus a free --metrics-addr. It does not
// wait for readiness; see WaitReady.
func StartAgent(bin string, stdout io.Writer, args ...string) (*Agent, error) {
	return StartAgentEnv(bin, nil, stdout, args...)
}

// StartAgentEnv is StartAgent with env added to the agent's environment.
func StartAgentEnv(bin string, env []string, stdout io.Writer, args ...string) (*Agent, error) {
	maddr, err := FreeAddr()
	if err != nil {
		return nil, err
	}
	a := &Agent{MetricsAddr: maddr, log: &syncBuffer{}, done: make(chan struct{})}
	a.Cmd = exec.Command(bin, append(args, "--metrics-addr", maddr)...)
	a.Cmd.Stderr = a.log
	if env != nil {
		a.Cmd.Env = append(os.Environ(), env...)
	}
	if stdout == nil {
		stdout = io.Discard
	}
	a.Cmd.Stdout = stdout
	if err := a.Cmd.Start(); err != nil {
		return nil, err
	}
	go func() { a.exitErr = a.Cmd.Wait(); close(a.done) }()
	return a, nil
}

// Log is what the agent wrote to stderr so far.
func (a *Agent) Log() string { return a.log.String() }

// WaitReady waits for /readyz to answer 200 and for the start-up line
// ("golens running"), which golens writes before it is ready, to have come
// through the stderr pipe: Log then holds what golens runs with.
func (a *Agent) WaitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case <-a.done:
			return fmt.Errorf("golens exited before ready: %v\n%s", a.exitErr, a.Log())
		default:
		}
		resp, err := http.Get("http://" + a.MetricsAddr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 && strings.Contains(a.Log(), "golens running") {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("golens not ready after %s\n%s", timeout, a.Log())
}

// Metrics returns the text of /metrics.
func (a *Agent) Metrics() (string, error) {
	resp, err := http.Get("http://" + a.MetricsAddr + "/metrics")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// Stop sends SIGTERM and waits up to timeout; it returns the exit code and
// how long the exit took, or an error when it had to be killed.
func (a *Agent) Stop(timeout time.Duration) (int, time.Duration, error) {
	start := time.Now()
	select {
	case <-a.done: // stopped already
		return a.Cmd.ProcessState.ExitCode(), 0, nil
	default:
	}
	a.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-a.done:
		return a.Cmd.ProcessState.ExitCode(), time.Since(start), nil
	case <-time.After(timeout):
		a.Cmd.Process.Kill()
		<-a.done
		return -1, time.Since(start), fmt.Errorf("golens did not exit within %s of SIGTERM", timeout)
	}
}

// Wait waits for the agent to exit on its own and returns its exit code.
func (a *Agent) Wait(timeout time.Duration) (int, error) {
	select {
	case <-a.done:
		return a.Cmd.ProcessState.ExitCode(), nil
	case <-time.After(timeout):
		a.Cmd.Process.Kill()
		<-a.done
		return -1, fmt.Errorf("golens still running after %s", timeout)
	}
}

// EBPFUnavailable says why eBPF probes cannot run here, or "" when they can.
func EBPFUnavailable() string {
	if os.Geteuid() != 0 {
		return "not running as root"
	}
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		return "kernel has no BTF"
	}
	if _, err := os.Stat("/sys/bus/event_source/devices/uprobe"); err != nil {
		return "kernel has no uprobe PMU"
	}
	return ""
}
