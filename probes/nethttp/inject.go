package nethttp

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/golens/golens/probes"
)

// Injector adds a W3C traceparent to the outgoing HTTP/1.x and HTTP/2
// requests of the processes it is given, on the wire (see inject.c and
// inject_h2.h): a service on another node, instrumented by golens or by
// an OpenTelemetry SDK, then continues the trace. The manager starts it
// (Probe.Sockets) when it runs with probes.FeatureInject, which also makes
// the client probes announce each request's ids, and adds and removes its
// targets' pids.
type Injector struct {
	objs    injectObjects
	sockops link.Link
	msgProg *ebpf.Program
	socks   *ebpf.Map

	// Announcements whose request never went out as announced (the
	// sweeper's; see sweep).
	sweepMu sync.Mutex
	prev    map[injectInjectKey]injectInjectIds
	unsent  [2]atomic.Uint64 // HTTP/1.x, HTTP/2
	stop    chan struct{}
	stopped sync.WaitGroup
}

// sweepEvery is how often stale announcements are looked for: one that
// survives a whole period was not consumed by its request (a send takes
// microseconds after its announcement).
const sweepEvery = 5 * time.Second

// sockets is Probe.Sockets.Start: the injector, sharing the announcement
// map with the manager's client probes.
func sockets(shared map[string]*ebpf.Map) (probes.Sockets, error) {
	pending := shared[bpfMapInjectPending]
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
		opts.MapReplacements = map[string]*ebpf.Map{injectMapInjectPending: pending}
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
	in.stop = make(chan struct{})
	in.stopped.Add(1)
	go func() {
		defer in.stopped.Done()
		t := time.NewTicker(sweepEvery)
		defer t.Stop()
		for {
			select {
			case <-in.stop:
				return
			case <-t.C:
				in.sweep()
			}
		}
	}()
	return in, nil
}

// sweep removes and counts the announcements that were already there, the
// same, at the previous sweep: their request was never sent as announced
// (an HTTP/2 stream whose HEADERS never came, on a connection the walker
// gave up or never saw; an HTTP/1.x request on a connection opened before
// golens attached). The map is an LRU of 8192 entries, so one pass is
// bounded.
func (in *Injector) sweep() {
	in.sweepMu.Lock()
	defer in.sweepMu.Unlock()
	var k injectInjectKey
	var v injectInjectIds
	now := make(map[injectInjectKey]injectInjectIds, len(in.prev))
	var stale []injectInjectKey
	it := in.objs.InjectPending.Iterate()
	for it.Next(&k, &v) {
		if old, ok := in.prev[k]; ok && old == v {
			stale = append(stale, k)
			continue
		}
		now[k] = v
	}
	for _, k := range stale {
		// Gone meanwhile: the request went out after all.
		if err := in.objs.InjectPending.Delete(&k); err != nil {
			continue
		}
		if k.Stream == 0 {
			in.unsent[0].Add(1)
		} else {
			in.unsent[1].Add(1)
		}
	}
	in.prev = now
}

// Add makes the connections pid opens from now on carry traceparents.
func (in *Injector) Add(pid int) error {
	return in.objs.InjectPids.Put(uint32(pid), uint8(1))
}

// Remove stops injecting for pid.
func (in *Injector) Remove(pid int) {
	in.objs.InjectPids.Delete(uint32(pid))
}

// InjectStats names the injector's counters, in the order of inject.c's
// enum inject_stat: what became of each request and connection the socket
// programs saw.
var InjectStats = []struct {
	Name   string // the counter's name, Stats' key
	Result string // "injected" or "skipped"
	Reason string // the metric's reason label
}{
	{"injected_http1", "injected", "http1"},
	{"injected_http2", "injected", "http2"},
	{"push_failed", "skipped", "push_failed"},
	{"http1_no_announcement", "skipped", "http1_no_announcement"},
	{"http1_mismatch", "skipped", "http1_mismatch"},
	{"http1_no_line", "skipped", "http1_no_line"},
	{"h2_frame_split", "skipped", "h2_frame_split"},
	{"h2_too_large", "skipped", "h2_too_large"},
	{"h2_malformed", "skipped", "h2_malformed"},
	{"h2_too_many_frames", "skipped", "h2_too_many_frames"},
	{"h2_bad_frame", "skipped", "h2_bad_frame"},
	{"h2_pull_failed", "skipped", "h2_pull_failed"},
	{"h2_preface_split", "skipped", "h2_preface_split"},
	{"no_state", "skipped", "no_state"},
	{"h2_resent", "skipped", "h2_resent"},
	{"send_buffer_full", "skipped", "send_buffer_full"},
	// Counted in user space (sweep), not by the kernel.
	{"http1_unsent", "skipped", "http1_unsent"},
	{"h2_unsent", "skipped", "h2_unsent"},
}

// kernelStats is how many of InjectStats are inject.c's slots.
const kernelStats = 16

// Stats returns every counter of InjectStats by name.
func (in *Injector) Stats() map[string]uint64 {
	st := make(map[string]uint64, len(InjectStats))
	for slot, s := range InjectStats[:kernelStats] {
		n, _ := probes.SumSlot(in.objs.InjectStats, uint32(slot)) // unreadable: none seen
		st[s.Name] = n
	}
	st["http1_unsent"] = in.unsent[0].Load()
	st["h2_unsent"] = in.unsent[1].Load()
	return st
}

// Close detaches and unloads the socket programs; connections keep working
// unchanged.
func (in *Injector) Close() error {
	if in.stop != nil {
		close(in.stop)
		in.stopped.Wait()
		in.stop = nil
	}
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
