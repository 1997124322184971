package discovery

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// helperEnv makes the test binary a plain Go program that waits to be
// killed: a Go target that needs no build.
const helperEnv = "GOLENS_DISCOVERY_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		time.Sleep(time.Hour)
		return
	}
	os.Exit(m.Run())
}

// helpers puts the test binary at dir/sel/helper (selected), a copy at
// dir/other/copy and a hard link at dir/other/linked (not selected).
func helpers(t *testing.T) (sel, cp, linked string) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, d := range []string{"sel", "other"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	sel, cp, linked = filepath.Join(dir, "sel", "helper"), filepath.Join(dir, "other", "copy"), filepath.Join(dir, "other", "linked")
	for _, p := range []string{sel, cp} {
		if err := copyFile(self, p); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Link(sel, linked); err != nil {
		t.Fatal(err)
	}
	return sel, cp, linked
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func startHelper(t *testing.T, path string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(path)
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd
}

type note struct {
	found  *Found
	gone   ID
	reason string
}

// recorder collects what a watcher reports, for a test to wait on.
func recorder(sel *Selector) (WatchConfig, chan note, chan int) {
	notes := make(chan note, 64)
	ready := make(chan int, 1)
	return WatchConfig{
		Selector: sel,
		Found:    func(f Found) error { notes <- note{found: &f}; return nil },
		Gone:     func(id ID, reason string) { notes <- note{gone: id, reason: reason} },
		Ready:    func(n int) { ready <- n },
	}, notes, ready
}

func next(t *testing.T, notes chan note, within time.Duration) note {
	t.Helper()
	select {
	case n := <-notes:
		return n
	case <-time.After(within):
		t.Fatalf("nothing reported within %s", within)
		return note{}
	}
}

func quiet(t *testing.T, notes chan note, d time.Duration) {
	t.Helper()
	select {
	case n := <-notes:
		t.Fatalf("unexpected report: found %+v, gone %v %s", n.found, n.gone, n.reason)
	case <-time.After(d):
	}
}

// Following kernel events (the rescan is pushed out of the way): a process
// there at start is found by the scan, one started later by its exec, a
// copy or hard link elsewhere is not selected, an exit is reported at
// once, a restart (new pid) is found again.
func TestWatcherEvents(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("needs root (process events connector)")
		}
		t.Skip("needs root (process events connector)")
	}
	selPath, cpPath, linkPath := helpers(t)
	sel, err := NewSelector([]string{filepath.Dir(selPath) + "/*"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg, notes, ready := recorder(sel)
	cfg.Rescan = time.Hour
	early := startHelper(t, selPath)
	w, err := NewWatcher(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()

	n := next(t, notes, 5*time.Second)
	if n.found == nil || n.found.PID != early.Process.Pid || !n.found.Exec.IsZero() || n.found.Exe != selPath || n.found.Rule != "exe="+filepath.Dir(selPath)+"/*" {
		t.Fatalf("initial scan: %+v", n.found)
	}
	if got := <-ready; got != 1 {
		t.Errorf("ready with %d, want 1", got)
	}

	startHelper(t, cpPath)
	startHelper(t, linkPath)
	start := time.Now()
	later := startHelper(t, selPath)
	n = next(t, notes, 2*time.Second)
	if n.found == nil || n.found.PID != later.Process.Pid || n.found.Exec.IsZero() {
		t.Fatalf("want the later process found by its exec, got %+v", n.found)
	}
	if n.found.Exec.Before(start.Add(-time.Second)) || n.found.Exec.After(time.Now()) {
		t.Errorf("exec time %s, process started at %s", n.found.Exec, start)
	}
	t.Logf("exec to Found: %s", time.Since(n.found.Exec))
	quiet(t, notes, 300*time.Millisecond) // not the copy, not the hard link

	id := n.found.ID
	later.Process.Kill()
	killed := time.Now()
	n = next(t, notes, time.Second)
	if n.gone != id || n.reason != "exited" {
		t.Fatalf("want %v gone, got %+v %v %s", id, n.found, n.gone, n.reason)
	}
	t.Logf("kill to Gone: %s", time.Since(killed))

	again := startHelper(t, selPath)
	n = next(t, notes, 2*time.Second)
	if n.found == nil || n.found.PID != again.Process.Pid {
		t.Fatalf("restart not found: %+v", n.found)
	}
	quiet(t, notes, 200*time.Millisecond)
}

// The rescan alone (events lost): exits, pid reuse and execs are noticed;
// a process Found refused is not offered again; the watcher never offers
// its own process.
func TestWatcherRescan(t *testing.T) {
	selPath, _, _ := helpers(t)
	self, _ := os.Executable()
	sel, err := NewSelector([]string{selPath, self}, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg, notes, _ := recorder(sel)
	refuse := true
	found := cfg.Found
	cfg.Found = func(f Found) error {
		found(f)
		if refuse {
			return errors.New("refused")
		}
		return nil
	}
	w, err := NewWatcher(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p := startHelper(t, selPath)
	w.rescan(context.Background(), RescanPeriodic)
	n := next(t, notes, time.Second)
	if n.found == nil || n.found.PID != p.Process.Pid {
		t.Fatalf("got %+v", n.found)
	}
	w.rescan(context.Background(), RescanPeriodic)
	quiet(t, notes, 50*time.Millisecond) // refused once: not offered again

	refuse = false
	q := startHelper(t, selPath)
	w.rescan(context.Background(), RescanPeriodic)
	n = next(t, notes, time.Second)
	if n.found == nil || n.found.PID != q.Process.Pid {
		t.Fatalf("got %+v", n.found)
	}
	quiet(t, notes, 50*time.Millisecond)

	// A process that exited while events were lost.
	q.Process.Kill()
	q.Wait()
	w.rescan(context.Background(), RescanPeriodic)
	if n = next(t, notes, time.Second); n.gone.PID != q.Process.Pid || n.reason != "exited" {
		t.Fatalf("got %+v %v", n.found, n.gone)
	}

	// Pid reuse: the pid is known with another start time.
	r := startHelper(t, selPath)
	w.rescan(context.Background(), RescanPeriodic)
	n = next(t, notes, time.Second)
	stale := n.found.ID
	stale.Start--
	w.known[r.Process.Pid] = tracked{id: stale, exe: selPath}
	w.rescan(context.Background(), RescanPeriodic)
	if n = next(t, notes, time.Second); n.gone != stale || n.reason != "exited" {
		t.Fatalf("reused pid: got gone %v %s", n.gone, n.reason)
	}
	if n = next(t, notes, time.Second); n.found == nil || n.found.ID.Start != stale.Start+1 {
		t.Fatalf("reused pid: got %+v", n.found)
	}

	// An exec we did not hear of: the same pid and start, another program.
	w.known[r.Process.Pid] = tracked{id: n.found.ID, exe: "/usr/bin/before-exec"}
	w.rescan(context.Background(), RescanPeriodic)
	if n = next(t, notes, time.Second); n.gone.PID != r.Process.Pid || n.reason != "exec" {
		t.Fatalf("exec: got gone %v %s", n.gone, n.reason)
	}
	if n = next(t, notes, time.Second); n.found == nil || n.found.PID != r.Process.Pid {
		t.Fatalf("exec: got %+v", n.found)
	}
	quiet(t, notes, 50*time.Millisecond)
	// Every scan counted; the helper binary read once whatever the pids.
	st := w.Stats()
	if st.Rescans != [rescanReasons]uint64{RescanPeriodic: 7} || st.Binaries != 1 || st.Execs != 0 {
		t.Errorf("stats %+v, want 7 periodic rescans, 1 binary read, 0 execs", st)
	}
}

// Exec and exit events, fed directly: an exec of a tracked pid loses it
// first, unless it happened before the watcher looked (queued during the
// first scan); thread exits are ignored.
func TestWatcherHandle(t *testing.T) {
	selPath, _, _ := helpers(t)
	sel, _ := NewSelector([]string{selPath}, nil)
	cfg, notes, _ := recorder(sel)
	w, err := NewWatcher(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	p := startHelper(t, selPath)
	pid := p.Process.Pid
	w.handle(ctx, procEvent{What: procEventExec, PID: pid, TGID: pid, Timestamp: monoNow()})
	n := next(t, notes, time.Second)
	if n.found == nil || n.found.PID != pid || n.found.Exec.IsZero() {
		t.Fatalf("got %+v", n.found)
	}
	w.handle(ctx, procEvent{What: procEventExec, PID: pid, TGID: pid, Timestamp: monoNow()}) // it exec'd again
	if n = next(t, notes, time.Second); n.gone.PID != pid || n.reason != "exec" {
		t.Fatalf("got gone %v %s", n.gone, n.reason)
	}
	if n = next(t, notes, time.Second); n.found == nil {
		t.Fatal("not found again after exec")
	}
	w.handle(ctx, procEvent{What: procEventExit, PID: pid + 1, TGID: pid}) // a thread
	quiet(t, notes, 50*time.Millisecond)
	p.Process.Signal(syscall.SIGKILL)
	w.handle(ctx, procEvent{What: procEventExit, PID: pid, TGID: pid})
	if n = next(t, notes, time.Second); n.gone.PID != pid || n.reason != "exited" {
		t.Fatalf("got gone %v %s", n.gone, n.reason)
	}
	if len(w.known) != 0 || len(w.failed) != 0 {
		t.Errorf("state left: %v %v", w.known, w.failed)
	}

	// Started while the first scan ran: the scan finds it, then its exec
	// event comes out of the queue, and is not news.
	before := monoNow()
	q := startHelper(t, selPath)
	w.rescan(ctx, RescanPeriodic)
	if n = next(t, notes, time.Second); n.found == nil || n.found.PID != q.Process.Pid {
		t.Fatalf("got %+v", n.found)
	}
	w.handle(ctx, procEvent{What: procEventExec, PID: q.Process.Pid, TGID: q.Process.Pid, Timestamp: before})
	quiet(t, notes, 50*time.Millisecond)
	if st := w.Stats(); st.Execs != 3 || st.Rescans[RescanPeriodic] != 1 {
		t.Errorf("stats %+v, want 3 execs and 1 rescan", st)
	}
}
