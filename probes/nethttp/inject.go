package nethttp

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/golens/golens/probes"
)

// Injector adds a W3C traceparent to the outgoing HTTP/1.x requests of the
// processes it is given, on the wire (see inject.c): a service on another
// node, instrumented by golens or by an OpenTelemetry SDK, then continues
// the trace. The manager starts it (Probe.Sockets) when it runs with
// probes.FeatureInject, which also makes the client probe announce each
// request's ids, and adds and removes its targets' pids.
type Injector struct {
	objs    injectObjects
	sockops link.Link
	msgProg *ebpf.Program
	socks   *ebpf.Map
}

// sockets is Probe.Sockets.Start: the injector, sharing the announcement
// map with the manager's client probes.
func sockets(shared map[string]*ebpf.Map) (probes.Sockets, error) {
	pending := shared["inject_pending"]
	if pending == nil {
		return nil, errors.New("the net/http probe declares no inject_pending map")
	}
	return startInjector(pending)
}

// startInjector loads the socket programs and attaches them: sock_ops to
// the cgroup v2 root, sk_msg to the sockhash. With pending nil they have an
// announcement map of their own.
func startInjector(pending *ebpf.Map) (*Injector, error) {
	root, err := cgroup2Root()
	if err != nil {
		return nil, err
	}
	in := &Injector{}
	var opts ebpf.CollectionOptions
	if pending != nil {
		opts.MapReplacements = map[string]*ebpf.Map{"inject_pending": pending}
	}
	err = loadInjectObjects(&in.objs, &opts)
	if err != nil {
		return nil, fmt.Errorf("load socket programs: %w", err)
	}
	err = link.RawAttachProgram(link.RawAttachProgramOptions{
		Target:  in.objs.InjectSocks.FD(),
		Program: in.objs.SkMsgInject,
		Attach:  ebpf.AttachSkMsgVerdict,
	})
	if err != nil {
		in.objs.Close()
		return nil, fmt.Errorf("attach sk_msg: %w", err)
	}
	in.msgProg, in.socks = in.objs.SkMsgInject, in.objs.InjectSocks
	in.sockops, err = link.AttachCgroup(link.CgroupOptions{
		Path:    root,
		Attach:  ebpf.AttachCGroupSockOps,
		Program: in.objs.SockopsInject,
	})
	if err != nil {
		in.Close()
		return nil, fmt.Errorf("attach sock_ops to %s: %w", root, err)
	}
	return in, nil
}

// Add makes the connections pid opens from now on carry traceparents.
func (in *Injector) Add(pid int) error {
	return in.objs.InjectPids.Put(uint32(pid), uint8(1))
}

// Remove stops injecting for pid.
func (in *Injector) Remove(pid int) {
	in.objs.InjectPids.Delete(uint32(pid))
}

// Names of the injector's counters in Stats (and probes.Stats.Sockets),
// by slot of inject_stats.
const (
	CounterInjected     = "injected"      // traceparent headers added
	CounterInjectFailed = "inject_failed" // insertions the kernel refused
)

// Stats returns the headers injected and the insertions the kernel
// refused, by name.
func (in *Injector) Stats() map[string]uint64 {
	sum := func(slot uint32) uint64 {
		var per []uint64
		if err := in.objs.InjectStats.Lookup(slot, &per); err != nil {
			return 0
		}
		var n uint64
		for _, v := range per {
			n += v
		}
		return n
	}
	return map[string]uint64{CounterInjected: sum(0), CounterInjectFailed: sum(1)}
}

// Close detaches and unloads the socket programs; connections keep working
// unchanged.
func (in *Injector) Close() error {
	var errs []error
	if in.sockops != nil {
		errs = append(errs, in.sockops.Close())
	}
	if in.msgProg != nil {
		errs = append(errs, link.RawDetachProgram(link.RawDetachProgramOptions{
			Target:  in.socks.FD(),
			Program: in.msgProg,
			Attach:  ebpf.AttachSkMsgVerdict,
		}))
	}
	errs = append(errs, in.objs.Close())
	return errors.Join(errs...)
}

// cgroup2Root finds where the cgroup v2 hierarchy is mounted (the hybrid
// layout puts it at /sys/fs/cgroup/unified, the unified one at
// /sys/fs/cgroup).
func cgroup2Root() (string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// ... mountpoint ... - fstype source options
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		fields, fs := strings.Fields(pre), strings.Fields(post)
		if len(fields) >= 5 && len(fs) >= 1 && fs[0] == "cgroup2" {
			return fields[4], nil
		}
	}
	return "", errors.New("no cgroup v2 hierarchy mounted: --inject-context needs one")
}
