// Package kernel says which of the kernel features golens' probes use are
// present on the running kernel, and what the absence of each one costs.
//
// The table is the single statement of golens' kernel floor: a required
// feature missing means golens cannot trace at all and refuses to start;
// an optional one missing turns off, or replaces, what it names. Probing
// runs before anything is attached, so a kernel that lacks a required
// feature never leaves a target half-instrumented.
package kernel

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/features"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"
)

// Use names what a feature is for: the core tracing every target needs,
// the uprobe_multi batching, or --inject-context's socket programs.
type Use int

const (
	// Required features: without any of them no probe can load or attach.
	Required Use = iota
	// Batching features make attaching and detaching cheaper; without them
	// the same probes attach another way.
	Batching
	// Injection features are what --inject-context's sock_ops and sk_msg
	// programs call; without them no traceparent is added on the wire.
	Injection
)

// Feature is one kernel capability the probes use.
type Feature struct {
	Name  string // metric label, e.g. "bpf_loop"
	Since string // first Linux release that has it; empty where not measured
	Use   Use
	// Without says what golens does when the feature is missing.
	Without string
	// Probe returns nil when the kernel has the feature, an error wrapping
	// ebpf.ErrNotSupported when it does not, any other error when it could
	// not tell (no privileges, say).
	Probe func() error
}

// helper probes a helper for one program type.
func helper(pt ebpf.ProgramType, fn asm.BuiltinFunc) func() error {
	return func() error { return features.HaveProgramHelper(pt, fn) }
}

// all is nil when every probe is.
func all(probes ...func() error) func() error {
	return func() error {
		for _, p := range probes {
			if err := p(); err != nil {
				return err
			}
		}
		return nil
	}
}

// Uprobe programs are of the kprobe program type; the helper checks below
// ask for that type, which kernels built without CONFIG_KPROBES still have.
const uprobe = ebpf.Kprobe

const (
	noTracing   = "golens cannot trace: no probe can load"
	noInjection = "no traceparent injection on the wire: --inject-context=on is refused, auto runs without"
)

// Features is every kernel capability golens uses, what it is for and what
// goes without it. The newest required one (bpf_loop, 5.17) is the floor.
var Features = []Feature{
	{Name: "bpf_syscall", Since: "4.1", Use: Required, Without: noTracing,
		Probe: func() error { return features.HaveProgramType(uprobe) }},
	{Name: "uprobes", Since: "4.17", Use: Required, Without: "golens cannot attach to any target",
		Probe: haveUprobes},
	{Name: "percpu_array", Since: "4.6", Use: Required, Without: noTracing,
		Probe: func() error { return features.HaveMapType(ebpf.PerCPUArray) }},
	{Name: "lru_hash", Since: "4.10", Use: Required, Without: noTracing,
		Probe: func() error { return features.HaveMapType(ebpf.LRUHash) }},
	{Name: "probe_read_user", Since: "5.5", Use: Required, Without: noTracing,
		Probe: helper(uprobe, asm.FnProbeReadUser)},
	{Name: "ringbuf", Since: "5.8", Use: Required, Without: noTracing,
		Probe: all(func() error { return features.HaveMapType(ebpf.RingBuf) },
			helper(uprobe, asm.FnRingbufReserve), helper(uprobe, asm.FnRingbufQuery))},
	{Name: "bpf_loop", Since: "5.17", Use: Required, Without: noTracing + " (the header map walk needs it)",
		Probe: helper(uprobe, asm.FnLoop)},
	{Name: "uprobe_multi", Since: "6.6", Use: Batching,
		Without: "one perf-event link per uprobe instead of one uprobe_multi link per program: same spans, slower attach and detach",
		Probe:   features.HaveBPFLinkUprobeMulti},
	{Name: "sock_ops", Since: "4.13", Use: Injection, Without: noInjection,
		Probe: func() error { return features.HaveProgramType(ebpf.SockOps) }},
	{Name: "sk_msg", Since: "4.17", Use: Injection, Without: noInjection,
		Probe: func() error { return features.HaveProgramType(ebpf.SkMsg) }},
	{Name: "sockhash", Since: "4.18", Use: Injection, Without: noInjection,
		Probe: all(func() error { return features.HaveMapType(ebpf.SockHash) },
			helper(ebpf.SockOps, asm.FnSockHashUpdate))},
	{Name: "sock_ops_socket_cookie", Since: "5.3", Use: Injection, Without: noInjection,
		Probe: helper(ebpf.SockOps, asm.FnGetSocketCookie)},
	{Name: "sock_ops_current_pid", Use: Injection, Without: noInjection,
		Probe: helper(ebpf.SockOps, asm.FnGetCurrentPidTgid)},
	{Name: "sk_msg_current_pid", Use: Injection, Without: noInjection,
		Probe: helper(ebpf.SkMsg, asm.FnGetCurrentPidTgid)},
	{Name: "sk_msg_push_data", Since: "4.20", Use: Injection, Without: noInjection,
		Probe: all(helper(ebpf.SkMsg, asm.FnMsgPushData), helper(ebpf.SkMsg, asm.FnMsgPullData), helper(ebpf.SkMsg, asm.FnMsgPopData))},
	// Where a connection's HTTP/2 frames start, across its sends.
	{Name: "sk_msg_sk_storage", Use: Injection, Without: noInjection,
		Probe: all(func() error { return features.HaveMapType(ebpf.SkStorage) }, helper(ebpf.SkMsg, asm.FnSkStorageGet))},
	// tcp_sock.write_seq, read through kernel BTF (CO-RE): tells a send
	// whose tail TCP could not queue, and which comes again.
	{Name: "sk_msg_tcp_sock", Use: Injection, Without: noInjection,
		Probe: all(helper(ebpf.SkMsg, asm.FnSkcToTcpSock), haveKernelBTF)},
}

// Floor is the oldest Linux release with every required feature.
func Floor() string {
	floor := [2]int{}
	for _, f := range Features {
		var v [2]int
		if f.Use != Required || f.Since == "" {
			continue
		}
		if _, err := fmt.Sscanf(f.Since, "%d.%d", &v[0], &v[1]); err != nil {
			continue
		}
		if v[0] > floor[0] || v[0] == floor[0] && v[1] > floor[1] {
			floor = v
		}
	}
	return fmt.Sprintf("%d.%d", floor[0], floor[1])
}

// haveUprobes is nil when uprobes can be created: through the uprobe PMU,
// as cilium/ebpf's link.Executable does first, or through tracefs.
func haveUprobes() error {
	for _, p := range []string{
		"/sys/bus/event_source/devices/uprobe/type",
		"/sys/kernel/tracing/uprobe_events",
		"/sys/kernel/debug/tracing/uprobe_events",
	} {
		if _, err := os.Stat(p); err == nil {
			return nil
		}
	}
	return fmt.Errorf("no uprobe PMU and no tracefs uprobe_events: %w", ebpf.ErrNotSupported)
}

// State is what probing found for one feature.
type State int

const (
	Present State = iota
	Missing
	Unknown // the probe failed for another reason
)

// Result is one feature's probe outcome.
type Result struct {
	Feature
	State State
	Err   error // why, when not Present
}

// Report is the outcome for every feature, in table order.
type Report []Result

// ProbeRunning probes the running kernel for every feature golens uses.
func ProbeRunning() Report {
	// Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK: raise it
	// first, or the probes fail for want of locked memory, not of the
	// feature. Where it cannot be raised this is a harmless no-op.
	_ = rlimit.RemoveMemlock()
	return Probe(Features)
}

// Release is the running kernel's release string, as uname -r prints it.
func Release() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "unknown"
	}
	return unix.ByteSliceToString(u.Release[:])
}

// Probe runs each feature's probe.
func Probe(fs []Feature) Report {
	r := make(Report, 0, len(fs))
	for _, f := range fs {
		res := Result{Feature: f}
		if err := f.Probe(); err != nil {
			res.State, res.Err = Unknown, err
			if errors.Is(err, ebpf.ErrNotSupported) {
				res.State = Missing
			}
		}
		r = append(r, res)
	}
	return r
}

// Has reports whether the named feature was found present.
func (r Report) Has(name string) bool {
	for _, res := range r {
		if res.Name == name {
			return res.State == Present
		}
	}
	return false
}

// Missing returns the names of the features not found present.
func (r Report) Missing() []string {
	var names []string
	for _, res := range r {
		if res.State != Present {
			names = append(names, res.Name)
		}
	}
	return names
}

// ErrUnsupported is a kernel that lacks what golens, or what it was asked
// to do, needs.
var ErrUnsupported = errors.New("kernel unsupported")

// Check decides, from a report, whether golens can run with inject asked
// for (--inject-context). It returns an error wrapping ErrUnsupported
// naming every missing feature that stops it. A feature whose probe could
// not tell is not a reason to refuse: attaching will say what is wrong.
func (r Report) Check(inject bool) error {
	var stops []string
	for _, res := range r {
		if res.State != Missing {
			continue
		}
		if res.Use == Required || (res.Use == Injection && inject) {
			stops = append(stops, res.Name)
		}
	}
	if len(stops) == 0 {
		return nil
	}
	what := "golens needs"
	if inject && !r.missingRequired() {
		what = "--inject-context needs"
	}
	return fmt.Errorf("%w: %s %s, which this kernel lacks", ErrUnsupported, what, strings.Join(stops, ", "))
}

func (r Report) missingRequired() bool {
	for _, res := range r {
		if res.State == Missing && res.Use == Required {
			return true
		}
	}
	return false
}

// haveKernelBTF is nil when the running kernel describes its types (CO-RE
// relocations are resolved against them).
func haveKernelBTF() error {
	if _, err := btf.LoadKernelSpec(); err != nil {
		return fmt.Errorf("%w: kernel BTF: %v", ebpf.ErrNotSupported, err)
	}
	return nil
}
