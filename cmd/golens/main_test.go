package main

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/golens/golens/probes/kernel"
)

// Only a loopback pprof address goes without a warning.
func TestLoopback(t *testing.T) {
	for _, c := range []struct {
		ip   string
		want bool
	}{{"127.0.0.1", true}, {"127.1.2.3", true}, {"::1", true}, {"0.0.0.0", false}, {"::", false}, {"10.0.0.7", false}} {
		if got := loopback(&net.TCPAddr{IP: net.ParseIP(c.ip), Port: 6060}); got != c.want {
			t.Errorf("loopback(%s) = %v, want %v", c.ip, got, c.want)
		}
	}
}

// --inject-context=auto goes without injection on a kernel that lacks a
// feature of the socket programs (Debian 12's 6.1: no
// bpf_get_current_pid_tgid in sock_ops) and says why; on is left to
// logKernel, which refuses to start (exit 69); off stays off.
func TestInjectOnKernel(t *testing.T) {
	res := func(name string, use kernel.Use, st kernel.State) kernel.Result {
		return kernel.Result{Feature: kernel.Feature{Name: name, Use: use}, State: st}
	}
	full := kernel.Report{res("bpf_loop", kernel.Required, kernel.Present), res("sock_ops_current_pid", kernel.Injection, kernel.Present)}
	deb12 := kernel.Report{res("bpf_loop", kernel.Required, kernel.Present), res("uprobe_multi", kernel.Batching, kernel.Missing),
		res("sock_ops_current_pid", kernel.Injection, kernel.Missing)}
	unprobed := kernel.Report{res("bpf_loop", kernel.Required, kernel.Present), res("sock_ops_current_pid", kernel.Injection, kernel.Unknown)}
	for _, c := range []struct {
		name    string
		mode    InjectMode
		kern    kernel.Report
		want    InjectMode
		wantWhy string // "" for no reason given
	}{
		{"auto, every feature", InjectAuto, full, InjectAuto, ""},
		{"auto, 6.1", InjectAuto, deb12, InjectOff, "--inject-context needs sock_ops_current_pid"},
		// Could not tell: try; the manager's attach decides.
		{"auto, not probed", InjectAuto, unprobed, InjectAuto, ""},
		{"on, 6.1", InjectOn, deb12, InjectOn, ""},
		{"off, every feature", InjectOff, full, InjectOff, ""},
	} {
		got, why := injectOnKernel(c.mode, c.kern)
		if got != c.want {
			t.Errorf("%s: mode %s, want %s", c.name, got, c.want)
		}
		if (why == nil) != (c.wantWhy == "") || why != nil && !strings.Contains(why.Error(), c.wantWhy) {
			t.Errorf("%s: reason %v, want %q", c.name, why, c.wantWhy)
		}
	}
	// What the agent then refuses: on with the 6.1 kernel, never auto.
	if logKernel(slog.New(slog.NewTextHandler(io.Discard, nil)), deb12, false) != true {
		t.Error("auto (logKernel told no inject) refused the 6.1 kernel")
	}
	if logKernel(slog.New(slog.NewTextHandler(io.Discard, nil)), deb12, true) != false {
		t.Error("on accepted a kernel that cannot inject")
	}
}

// --inject-context takes on, off, auto and the booleans it took before;
// alone it means on; the config file takes the same words.
func TestInjectMode(t *testing.T) {
	for _, c := range []struct {
		args []string
		want InjectMode
	}{
		{nil, InjectOff},
		{[]string{"--inject-context"}, InjectOn},
		{[]string{"--inject-context=auto"}, InjectAuto},
		{[]string{"--inject-context=AUTO"}, InjectAuto},
		{[]string{"--inject-context=on"}, InjectOn},
		{[]string{"--inject-context=off"}, InjectOff},
		{[]string{"--inject-context=true"}, InjectOn},
		{[]string{"--inject-context=false"}, InjectOff},
	} {
		cfg, err := parseConfig(append([]string{"--pid", "1"}, c.args...))
		if err != nil || cfg.InjectContext != c.want {
			t.Errorf("%v: %q, %v; want %q", c.args, cfg.InjectContext, err, c.want)
		}
	}
	if _, err := parseConfig([]string{"--pid", "1", "--inject-context=maybe"}); err == nil {
		t.Error("--inject-context=maybe accepted")
	}
	f := filepath.Join(t.TempDir(), "config.yaml")
	for _, c := range []struct {
		yaml string
		want InjectMode
	}{{"auto", InjectAuto}, {"true", InjectOn}, {"false", InjectOff}, {"on", InjectOn}, {"off", InjectOff}} {
		os.WriteFile(f, []byte("pids: [1]\ninject_context: "+c.yaml+"\n"), 0o644)
		cfg, err := parseConfig([]string{"--config", f})
		if err != nil || cfg.InjectContext != c.want {
			t.Errorf("inject_context: %s: %q, %v; want %q", c.yaml, cfg.InjectContext, err, c.want)
		}
		// The flag wins over the file.
		if cfg, err := parseConfig([]string{"--config", f, "--inject-context=off"}); err != nil || cfg.InjectContext != InjectOff {
			t.Errorf("inject_context: %s, flag off: %q, %v", c.yaml, cfg.InjectContext, err)
		}
	}
	for _, bad := range []string{"maybe", "[on]"} {
		os.WriteFile(f, []byte("pids: [1]\ninject_context: "+bad+"\n"), 0o644)
		var u usageError
		if _, err := parseConfig([]string{"--config", f}); !errors.As(err, &u) {
			t.Errorf("inject_context: %s: %v, want a usage error", bad, err)
		}
	}
}
