package discovery

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

func TestParseStartTime(t *testing.T) {
	// A command name with spaces and parentheses, as a process may pick.
	line := "4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 3 0 987654 1234 56 " +
		"18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n"
	got, err := parseStartTime([]byte(line))
	if err != nil || got != 987654 {
		t.Errorf("got %d %v, want 987654", got, err)
	}
	for _, bad := range []string{"", "1 (x S 1", "1 (x) S 1 2 3", "1 (x) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 x"} {
		if _, err := parseStartTime([]byte(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestStartTimeAndExe(t *testing.T) {
	st, err := StartTime(os.Getpid())
	if err != nil || st == 0 {
		t.Fatalf("StartTime: %d %v", st, err)
	}
	exe, err := Exe(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	self, _ := os.Executable()
	if exe != self {
		t.Errorf("Exe = %q, want %q", exe, self)
	}
}

// Replicas of one binary cost one read; a non-Go program is told apart.
func TestGoCache(t *testing.T) {
	var c goCache
	v, ok, read := c.goVersion(os.Getpid())
	if !ok || !read || v != runtime.Version() {
		t.Fatalf("this test binary: %q %v read=%v, want %s read", v, ok, read, runtime.Version())
	}
	if len(c.m) != 1 {
		t.Fatalf("cache has %d entries", len(c.m))
	}
	// A second process of the same file is answered from the cache: make
	// the cached answer recognisable to prove it.
	for k := range c.m {
		c.m[k] = "go0.cached"
	}
	if v, _, read := c.goVersion(os.Getpid()); v != "go0.cached" || read {
		t.Errorf("not served from the cache: %q read=%v", v, read)
	}

	sh, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep(1)")
	}
	cmd := exec.Command(sh, "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	if v, ok, _ := c.goVersion(cmd.Process.Pid); ok {
		t.Errorf("%s taken for a Go program (%s)", filepath.Base(sh), v)
	}
	if len(c.m) != 2 {
		t.Errorf("non-Go answer not cached: %d entries", len(c.m))
	}
	if _, ok, _ := c.goVersion(1 << 30); ok {
		t.Error("a pid that cannot exist is a Go program")
	}
}
