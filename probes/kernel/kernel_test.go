package kernel

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"

	"github.com/cilium/ebpf"
)

// fake is the feature table with every probe replaced: the names in
// missing report ErrNotSupported, those in unknown another error.
func fake(missing, unknown []string) []Feature {
	fs := make([]Feature, len(Features))
	for i, f := range Features {
		f.Probe = func() error { return nil }
		for _, m := range missing {
			if m == f.Name {
				f.Probe = func() error { return fmt.Errorf("probe %s: %w", m, ebpf.ErrNotSupported) }
			}
		}
		for _, u := range unknown {
			if u == f.Name {
				f.Probe = func() error { return fmt.Errorf("probe %s: %w", u, syscall.EPERM) }
			}
		}
		fs[i] = f
	}
	return fs
}

func TestCheck(t *testing.T) {
	for _, c := range []struct {
		name             string
		missing, unknown []string
		inject           bool
		want             string // "" when golens may run; else the error text
	}{
		{name: "all present"},
		{name: "all present, inject", inject: true},
		// Debian 12's 6.1: the perf-event fallback, nothing refused.
		{name: "no uprobe_multi", missing: []string{"uprobe_multi"}, inject: true},
		{name: "no bpf_loop", missing: []string{"bpf_loop"},
			want: "kernel unsupported: golens needs bpf_loop, which this kernel lacks"},
		// Linux 5.4: neither the ring buffer nor bpf_loop.
		{name: "5.4", missing: []string{"ringbuf", "bpf_loop", "uprobe_multi"},
			want: "kernel unsupported: golens needs ringbuf, bpf_loop, which this kernel lacks"},
		{name: "no uprobes", missing: []string{"uprobes"},
			want: "kernel unsupported: golens needs uprobes, which this kernel lacks"},
		// Without --inject-context its features cost nothing.
		{name: "no push, no inject", missing: []string{"sk_msg_push_data", "sock_ops_current_pid"}},
		{name: "no push, inject", missing: []string{"sk_msg_push_data", "sock_ops_current_pid"}, inject: true,
			want: "kernel unsupported: --inject-context needs sock_ops_current_pid, sk_msg_push_data, which this kernel lacks"},
		{name: "required and inject", missing: []string{"ringbuf", "sk_msg"}, inject: true,
			want: "kernel unsupported: golens needs ringbuf, sk_msg, which this kernel lacks"},
		// A probe that could not tell (no privileges) refuses nothing: the
		// attach that follows says what is wrong.
		{name: "unknown", unknown: []string{"bpf_loop", "sk_msg"}, inject: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := Probe(fake(c.missing, c.unknown))
			err := r.Check(c.inject)
			if c.want == "" {
				if err != nil {
					t.Fatalf("Check = %v, want nil", err)
				}
			} else {
				if err == nil || err.Error() != c.want {
					t.Fatalf("Check = %v, want %q", err, c.want)
				}
				if !errors.Is(err, ErrUnsupported) {
					t.Fatalf("Check error %v is not ErrUnsupported", err)
				}
			}
			var want []string // in table order
			for _, f := range Features {
				for _, n := range append(c.missing, c.unknown...) {
					if n == f.Name {
						want = append(want, n)
					}
				}
			}
			if got := strings.Join(r.Missing(), ","); got != strings.Join(want, ",") {
				t.Fatalf("Missing = %q, want %q", got, want)
			}
			for _, m := range c.missing {
				if r.Has(m) {
					t.Errorf("Has(%s) = true for a missing feature", m)
				}
			}
			if !r.Has("bpf_syscall") {
				t.Errorf("Has(bpf_syscall) = false for a present feature")
			}
		})
	}
}

// Every feature says what golens does without it, and has a probe.
func TestTable(t *testing.T) {
	seen := make(map[string]bool)
	for _, f := range Features {
		if f.Without == "" || f.Probe == nil || seen[f.Name] {
			t.Errorf("feature %q: want a unique name, a Without text and a probe", f.Name)
		}
		seen[f.Name] = true
	}
}

// The floor the README states is the newest release a required feature
// needs: keep the two in step.
func TestFloor(t *testing.T) {
	if got := Floor(); got != "5.17" {
		t.Fatalf("Floor = %s, want 5.17 (update README.md and docs/architecture.md with it)", got)
	}
}
