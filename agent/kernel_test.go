package agent

import (
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/golens/golens/probes/kernel"
)

// --inject-context=auto goes without injection on a kernel that lacks a
// feature of the socket programs (Debian 12's 6.1: no
// bpf_get_current_pid_tgid in sock_ops) and says why; on is left to
// logKernel, which refuses to start (ErrKernel, exit 69); off stays off.
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
	if logKernel(slog.New(slog.NewTextHandler(io.Discard, nil)), deb12, false) != nil {
		t.Error("auto (logKernel told no inject) refused the 6.1 kernel")
	}
	if !errors.Is(logKernel(slog.New(slog.NewTextHandler(io.Discard, nil)), deb12, true), ErrKernel) {
		t.Error("on accepted a kernel that cannot inject")
	}
}
