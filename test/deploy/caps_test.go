package deploy

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/golens/golens/test/harness"
)

// nobody is the unprivileged user a target runs as.
const nobody = 65534

// TestLeastCapabilities runs the real agent with exactly the capabilities
// the systemd unit and the DaemonSet grant — as root, but with no other
// capability in its bounding, permitted, effective or ambient set, and no new
// privileges, as systemd sets it up — and checks that it traces a target of
// another user whose binary only that user may read. Then it takes away one
// capability at a time: without CAP_BPF, CAP_PERFMON, CAP_SYS_PTRACE or
// CAP_DAC_READ_SEARCH golens cannot instrument that target, so none of them
// is granted for nothing. (CAP_NET_ADMIN serves discovery's exec events and
// --inject-context, which the e2e tests cover.)
func TestLeastCapabilities(t *testing.T) {
	if why := harness.EBPFUnavailable(); why != "" {
		unavailable(t, "eBPF unavailable: %s", why)
	}
	setpriv := aptTool(t, "setpriv", "util-linux")
	agent := buildAgent(t, t.TempDir())

	// A target of user nobody, from a binary only nobody may read.
	dir, err := os.MkdirTemp("", "golens-caps-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	app, err := harness.BuildApp("httpserver", harness.Variant{}, dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(app, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(app, 0o700); err != nil {
		t.Fatal(err)
	}
	pid, addr := startTarget(t, app, nobody)

	recv, err := harness.NewReceiver()
	if err != nil {
		t.Fatal(err)
	}
	defer recv.Close()

	// runAgent runs golens with caps (names without CAP_, lower case) only.
	runAgent := func(caps []string) (*exec.Cmd, string, *strings.Builder, chan struct{}) {
		set := "-all"
		for _, c := range caps {
			set += ",+" + c
		}
		maddr, err := harness.FreeAddr()
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(setpriv, "--bounding-set="+set, "--inh-caps="+set, "--ambient-caps="+set, "--no-new-privs", "--",
			agent, "--pid", fmt.Sprint(pid), "--otlp-endpoint", recv.Addr(), "--otlp-insecure", "--metrics-addr", maddr,
			"--service-name", "caps-"+strings.Join(caps, "-"))
		log := &strings.Builder{}
		cmd.Stdout, cmd.Stderr = log, log
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		return cmd, maddr, log, done
	}
	var all []string
	for _, c := range agentCaps {
		all = append(all, strings.ToLower(strings.TrimPrefix(c, "CAP_")))
	}

	t.Run("granted", func(t *testing.T) {
		cmd, maddr, log, done := runAgent(all)
		defer func() { cmd.Process.Kill(); <-done }()
		ready := false
		for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline) && !ready; time.Sleep(50 * time.Millisecond) {
			select {
			case <-done:
				t.Fatalf("golens with %v exited %d:\n%s", all, cmd.ProcessState.ExitCode(), log.String())
			default:
			}
			if resp, err := http.Get("http://" + maddr + "/readyz"); err == nil {
				resp.Body.Close()
				ready = resp.StatusCode == http.StatusOK
			}
		}
		if !ready {
			t.Fatalf("golens with %v never ready:\n%s", all, log.String())
		}
		resp, err := http.Get("http://" + addr + "/hello")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		service := "caps-" + strings.Join(all, "-")
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			for _, s := range recv.Spans() {
				if s.Resource["service.name"] == service && s.Name == "GET /hello" {
					t.Logf("span %s %s from pid %d (user nobody, binary mode 0700) with only %v", s.Name, s.TraceID, pid, all)
					return
				}
			}
		}
		t.Fatalf("no GET /hello span from golens with %v:\n%s", all, log.String())
	})

	for i, c := range all {
		less := append(append([]string{}, all[:i]...), all[i+1:]...)
		if c == "net_admin" {
			continue
		}
		t.Run("without_"+c, func(t *testing.T) {
			cmd, _, log, done := runAgent(less)
			select {
			case <-done:
				// Refused for the right reason, said in one line, with
				// the exit status of "no --pid target instrumented".
				line := lastLine(log.String())
				if code := cmd.ProcessState.ExitCode(); code != 64 {
					t.Errorf("golens without %s exited %d, want 64", c, code)
				}
				for _, want := range capRefusal[c] {
					if !strings.Contains(line, want) {
						t.Errorf("without %s, the error does not say %q: %s", c, want, line)
					}
				}
				t.Logf("without %s: %s", c, line)
			case <-time.After(15 * time.Second):
				cmd.Process.Kill()
				<-done
				t.Errorf("golens without %s still runs: it did not need it?\n%s", c, log.String())
			}
		})
	}
}

// capRefusal is what golens' error says when one capability is missing:
// the kernel's refusal, at the step that needs it.
var capRefusal = map[string][]string{
	"bpf":             {"msg=\"cannot instrument\"", "map", "operation not permitted"},          // creating the shared maps
	"perfmon":         {"msg=\"cannot instrument\"", "load program", "operation not permitted"}, // loading a uprobe program
	"sys_ptrace":      {"msg=\"cannot instrument\"", "/exe: permission denied"},                 // another user's /proc/PID/exe
	"dac_read_search": {"msg=\"cannot instrument\"", "/exe: permission denied"},                 // a binary only its user may read
}

// startTarget runs a test app as uid and waits for its address.
func startTarget(t *testing.T, bin string, uid uint32) (int, string) {
	t.Helper()
	cmd := exec.Command(bin, "-addr", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), "GODEBUG=httpmuxgo121=0")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
	cmd.Dir = filepath.Dir(bin)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "listening on "); ok {
				addr <- a
			}
		}
	}()
	select {
	case a := <-addr:
		return cmd.Process.Pid, a
	case <-time.After(10 * time.Second):
		t.Fatalf("%s did not report its address", bin)
	}
	return 0, ""
}
