package probes

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// SocketPrograms declares programs a probe family runs on sockets rather
// than in targets: a cgroup sock_ops program that puts the connections the
// targets open into a sockhash, and an sk_msg program on that sockhash
// that sees what they send. They are loaded and attached once for the
// whole agent, when the manager was asked for their Feature, and share the
// maps the Spec lists as Shared with every target's uprobe objects. Which
// processes they serve is a pid map the manager keeps: a target's pid is
// in it while the target is attached.
type SocketPrograms struct {
	Feature  string // attached only when the manager was asked for it
	SockOps  string // sock_ops program, attached to the cgroup v2 root
	Msg      string // sk_msg verdict program, attached to Sockhash
	Sockhash string // the sockhash sock_ops fills
	Pids     string // hash map, pid (u32) -> u8, of the targets served
	// Stats is a per-CPU u64 array of counters, one per Counters name by
	// slot, reported in Stats.Sockets.
	Stats    string
	Counters []string
	// Load returns a fresh copy of the compiled objects (bpf2go's loader).
	Load func() (*ebpf.CollectionSpec, error)
}

// FeatureError says the agent-wide programs of a feature could not be
// attached: the manager goes on without the feature.
type FeatureError struct {
	Feature string
	Err     error
}

func (e *FeatureError) Error() string { return fmt.Sprintf("feature %s off: %v", e.Feature, e.Err) }

func (e *FeatureError) Unwrap() error { return e.Err }

// sockets is one SocketPrograms attached.
type sockets struct {
	decl    SocketPrograms
	coll    *ebpf.Collection
	sockops link.Link
	pids    *ebpf.Map
	stats   *ebpf.Map
}

// attachSockets loads and attaches sp, its maps shared with the uprobe
// objects as far as both declare them.
func attachSockets(sp SocketPrograms, shared map[string]*ebpf.Map) (*sockets, error) {
	root, err := cgroup2Root()
	if err != nil {
		return nil, err
	}
	cs, err := sp.Load()
	if err != nil {
		return nil, fmt.Errorf("load socket programs: %w", err)
	}
	replace := make(map[string]*ebpf.Map)
	for name, mp := range shared {
		if cs.Maps[name] != nil {
			replace[name] = mp
		}
	}
	coll, err := ebpf.NewCollectionWithOptions(cs, ebpf.CollectionOptions{MapReplacements: replace})
	if err != nil {
		return nil, fmt.Errorf("load socket programs into kernel: %w", err)
	}
	s := &sockets{decl: sp, coll: coll, pids: coll.Maps[sp.Pids], stats: coll.Maps[sp.Stats]}
	msg, ops, hash := coll.Programs[sp.Msg], coll.Programs[sp.SockOps], coll.Maps[sp.Sockhash]
	if msg == nil || ops == nil || hash == nil || s.pids == nil {
		coll.Close()
		return nil, fmt.Errorf("socket objects lack %s, %s, %s or %s", sp.Msg, sp.SockOps, sp.Sockhash, sp.Pids)
	}
	err = link.RawAttachProgram(link.RawAttachProgramOptions{Target: hash.FD(), Program: msg, Attach: ebpf.AttachSkMsgVerdict})
	if err != nil {
		coll.Close()
		return nil, fmt.Errorf("attach %s: %w", sp.Msg, err)
	}
	s.sockops, err = link.AttachCgroup(link.CgroupOptions{Path: root, Attach: ebpf.AttachCGroupSockOps, Program: ops})
	if err != nil {
		s.close()
		return nil, fmt.Errorf("attach %s to %s: %w", sp.SockOps, root, err)
	}
	return s, nil
}

// close detaches and unloads the programs; connections keep working
// unchanged.
func (s *sockets) close() error {
	var errs []error
	if s.sockops != nil {
		errs = append(errs, s.sockops.Close())
	}
	errs = append(errs, link.RawDetachProgram(link.RawDetachProgramOptions{
		Target:  s.coll.Maps[s.decl.Sockhash].FD(),
		Program: s.coll.Programs[s.decl.Msg],
		Attach:  ebpf.AttachSkMsgVerdict,
	}))
	s.coll.Close()
	return errors.Join(errs...)
}

// counters adds the programs' counters, by name, to into.
func (s *sockets) counters(into map[string]uint64) {
	if s.stats == nil {
		return
	}
	for slot, name := range s.decl.Counters {
		into[name] += sumSlot(s.stats, uint32(slot))
	}
}

// serveLocked makes the socket programs serve the connections pid opens
// from now on. m.mu is held.
func (m *Manager) serveLocked(pid int) error {
	var errs []error
	for _, s := range m.sockets {
		if err := s.pids.Put(uint32(pid), uint8(1)); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", s.decl.Feature, err))
		}
	}
	return errors.Join(errs...)
}

// unserve takes pid out of every socket program's pid map.
func (m *Manager) unserve(pid int) {
	m.mu.Lock()
	socks := m.sockets
	m.mu.Unlock()
	for _, s := range socks {
		s.pids.Delete(uint32(pid))
	}
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
	return "", errors.New("no cgroup v2 hierarchy mounted")
}
