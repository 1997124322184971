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
// the trace. It needs the manager to run with probes.FeatureInject so the
// client probe announces each request's ids.
type Injector struct {
	objs    injectObjects
	sockops link.Link
	msgProg *ebpf.Program
	socks   *ebpf.Map
}

// StartInjector loads the socket programs, sharing the announcement map
// with the manager's client probes, and attaches them: sock_ops to the
// cgroup v2 root, sk_msg to the sockhash.
func StartInjector(m *probes.Manager) (*Injector, error) {
	pending, err := m.Shared("inject_pending")
	if err != nil {
		return nil, err
	}
	if pending == nil {
		return nil, errors.New("the net/http probe declares no inject_pending map")
	}
	root, err := cgroup2Root()
	if err != nil {
		return nil, err
	}
	in := &Injector{}
	err = loadInjectObjects(&in.objs, &ebpf.CollectionOptions{
		MapReplacements: map[string]*ebpf.Map{"inject_pending": pending},
	})
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

// Slots of inject_stats (enum inject_stat in inject.c).
const (
	statInjected     = 0
	statRefused      = 1
	statNoAnnounce   = 2
	statLineMismatch = 3
)

// Stats returns the headers injected and the insertions the kernel refused.
func (in *Injector) Stats() (injected, refused uint64) {
	return in.stat(statInjected), in.stat(statRefused)
}

// Skipped returns, by reason, the requests the socket program sent on
// unchanged because it could not match them exactly to a client span.
func (in *Injector) Skipped() map[string]uint64 {
	return map[string]uint64{
		"no_announcement": in.stat(statNoAnnounce),
		"line_mismatch":   in.stat(statLineMismatch),
	}
}

// stat sums one slot of inject_stats over the CPUs.
func (in *Injector) stat(slot uint32) uint64 {
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
