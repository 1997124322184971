package probes

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/features"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/golens/golens/probes/event"
	"github.com/golens/golens/probes/inspect"
)

// Attach instruments process pid. It returns an error when no probe family
// could be attached; families that fail are reported in Attachment.Refused.
// A binary that cannot be trusted (malformed, or one whose inspection
// panicked) refuses the whole target, counted once by reason.
func (m *Manager) Attach(pid int, proc *event.Process) (Attachment, error) {
	if err := m.awaitReleased(pid); err != nil {
		return Attachment{}, err
	}
	fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if err != nil {
		return Attachment{}, fmt.Errorf("pid %d: no such process: %w", pid, err)
	}
	// Non-blocking, so the runtime's poller waits for the exit.
	pidfd := os.NewFile(uintptr(fd), fmt.Sprintf("pidfd:%d", pid))
	var (
		t   *target
		res Attachment
	)
	// A process that executes another program while being attached is
	// attached again, to what it runs now.
	for try := 0; ; try++ {
		t = &target{proc: proc, pidfd: pidfd, objs: &m.objs, done: make(chan struct{})}
		res, err = m.attachImage(pid, t)
		if !errors.Is(err, ErrExecDuringAttach) || try == 2 {
			break
		}
		m.log.Debug("target executed another program while being attached; again", "pid", pid)
	}
	switch {
	case errors.Is(err, ErrPanic):
		m.countReason("inspect_panic")
	case errors.Is(err, inspect.ErrBadBinary):
		m.countReason("bad_binary")
	}
	if err != nil {
		pidfd.Close()
		return res, err
	}
	var serveErr error
	m.mu.Lock()
	_, dup := m.targets[pid]
	if !dup {
		m.targets[pid] = t
		// Served in the same step as it becomes a target, so that the
		// releaser who claims it (and unserves it) always comes after.
		serveErr = m.serveLocked(pid)
	}
	m.mu.Unlock()
	if dup {
		t.close()
		return Attachment{}, fmt.Errorf("pid %d: already attached", pid)
	}
	if serveErr != nil {
		res.Skipped = append(res.Skipped, fmt.Sprintf("socket programs: %v", serveErr))
	}
	go m.awaitExit(pid, t)
	if m.reader != nil {
		// Wake the reader: it waits without a deadline while there is no
		// target, and a new target's first events should not wait for a
		// quiet reader's longest poll.
		m.reader.Flush()
	}
	return res, nil
}

// attachImage inspects the program pid runs and attaches t's probes to
// it. On error nothing of it stays attached. A panic (the standard
// library's debug packages are not hardened against crafted files, nor is
// every line here) is the error ErrPanic, naming the target.
func (m *Manager) attachImage(pid int, t *target) (res Attachment, err error) {
	res = Attachment{Refused: make(map[string]error)}
	defer func() {
		if r := recover(); r != nil {
			m.log.Debug("attach panicked", "pid", pid, "panic", r, "stack", string(debug.Stack()))
			err = fmt.Errorf("pid %d (%s): %w: %v", pid, exeName(pid), ErrPanic, r)
		}
		if err != nil {
			ran := len(t.links) > 0
			t.closeProbes()
			if ran { // its programs may have run: leave nothing of them
				m.forgetPid(pid)
			}
		}
	}()
	// Read before the executable is opened: a process that executes
	// another program from here on gets another auxiliary vector.
	auxv, _ := readAuxv(pid)
	exe := fmt.Sprintf("/proc/%d/exe", pid)
	bin, err := inspect.Open(exe)
	if err != nil {
		if errors.Is(err, inspect.ErrNotGo) {
			return res, fmt.Errorf("pid %d (%s): %w", pid, exeName(pid), ErrNotGo)
		}
		return res, fmt.Errorf("pid %d (%s): read executable: %w", pid, exeName(pid), err)
	}
	defer bin.Close()
	if bin.Arch != runtime.GOARCH {
		// The eBPF objects read the registers of the agent's own
		// architecture (an emulated foreign binary, say under qemu-user).
		return res, fmt.Errorf("pid %d (%s): read executable: %s code, golens is built for %s", pid, exeName(pid), bin.Arch, runtime.GOARCH)
	}
	if m.afterInspect != nil {
		m.afterInspect(pid)
	}
	if t.proc.GoVersion == "" {
		t.proc.GoVersion = bin.GoVersion
	}
	if err := m.ensureShared(); err != nil {
		return res, err
	}
	// Uprobes go on the file inspected, through its open descriptor: the
	// path /proc/PID/exe names whatever the process runs at attach time.
	ex, err := link.OpenExecutable(fmt.Sprintf("/proc/self/fd/%d", bin.File().Fd()))
	if err != nil {
		return res, fmt.Errorf("pid %d: %w", pid, err)
	}
	im := newImage(pid, auxv, bin)
	t.Target = Target{Proc: t.proc, Clock: m.clock, ErrorType: im.errorTypes(bin), Text: NewText()}
	for _, s := range m.specs {
		if s.Library != "" && !bin.HasFunc(s.Library) {
			continue // the program does not use this library
		}
		obj, links, npoints, skipped, err := m.attachSpec(s, bin, ex, im)
		if errors.Is(err, inspect.ErrBadBinary) {
			return res, fmt.Errorf("pid %d (%s): %s: %w", pid, exeName(pid), s.Name, err)
		}
		if err != nil {
			res.Refused[s.Name] = err
			m.countRefusal(err)
			continue
		}
		res.Skipped = append(res.Skipped, skipped...)
		t.held = append(t.held, obj)
		t.links = append(t.links, links...)
		t.attached = append(t.attached, s.Name)
		res.Uprobes += npoints
	}
	res.Probes = t.attached
	if len(t.attached) == 0 {
		return res, fmt.Errorf("pid %d (%s): no probe could be attached: %w", pid, exeName(pid), joinRefusals(res.Refused))
	}
	if err := im.unchanged(bin, t.pidfd); err != nil {
		return res, err
	}
	return res, nil
}

// awaitReleased returns once pid is free to attach: an earlier process of
// that pid being released (its events still in the ring, decoded as its)
// is waited for, so that none of them is taken for the new process's. It
// fails when pid is attached.
func (m *Manager) awaitReleased(pid int) error {
	m.mu.Lock()
	t, ok := m.targets[pid]
	releasing := ok && t.releasing
	m.mu.Unlock()
	if ok && !releasing {
		return fmt.Errorf("pid %d: already attached", pid)
	}
	if ok {
		<-t.done
	}
	return nil
}

// attachSpec loads one probe family for one target, or takes the object
// already loaded with the same constants, and attaches its hooks for the
// target's pid. Optional hooks that cannot be attached are reported in
// skipped. It returns the object (one reference, see objects.put), its
// links, and the number of probe points (entry and RET instructions) those
// links cover.
func (m *Manager) attachSpec(s Spec, bin *inspect.Binary, ex *link.Executable, im *image) (obj *loaded, links []link.Link, npoints int, skipped []string, err error) {
	r := m.resolved.get(s, bin, im, m.features)
	if r.err != nil {
		return nil, nil, 0, nil, r.err
	}
	consts, points, skipped := r.consts, r.points, append([]string(nil), r.skipped...)
	// With uprobe_multi links (Linux 6.6+) each program is one link per
	// target, whatever its number of points: closing a link pays the
	// kernel's uprobe unregister grace period (~0.1 s, serialised across
	// perf-event uprobes) once instead of once per point.
	multi := features.HaveBPFLinkUprobeMulti() == nil
	// Loaded once for every target with these constants (objects.go).
	obj, err = m.objs.get(objectKey(s.Name, consts, points, multi), func() (*ebpf.Collection, error) {
		return m.loadSpec(s, consts, points, multi)
	})
	if err != nil {
		return nil, nil, 0, nil, err
	}
	links, err = linkPoints(obj.coll, points, multi, ex, im.pid)
	if err != nil {
		m.objs.put(obj)
		return nil, nil, 0, nil, err
	}
	return obj, links, len(points), skipped, nil
}

// linkPoints attaches coll's programs at points for process pid, each
// program one link with uprobe_multi, else one link per point. On error
// none stays attached.
func linkPoints(coll *ebpf.Collection, points []point, multi bool, ex *link.Executable, pid int) ([]link.Link, error) {
	var links []link.Link
	fail := func(err error) ([]link.Link, error) {
		closeAll(links)
		return nil, err
	}
	if multi {
		byProg := make(map[string][]uint64)
		var order []string
		for _, p := range points {
			if _, ok := byProg[p.prog]; !ok {
				order = append(order, p.prog)
			}
			byProg[p.prog] = append(byProg[p.prog], p.addr+p.off)
		}
		for _, name := range order {
			prog := coll.Programs[name]
			if prog == nil {
				return fail(fmt.Errorf("objects have no program %s", name))
			}
			l, err := ex.UprobeMulti(nil, prog, &link.UprobeMultiOptions{Addresses: byProg[name], PID: uint32(pid)})
			if err != nil {
				return fail(fmt.Errorf("attach %s at %#x: %w", name, byProg[name], err))
			}
			links = append(links, l)
		}
		return links, nil
	}
	for _, p := range points {
		prog := coll.Programs[p.prog]
		if prog == nil {
			return fail(fmt.Errorf("objects have no program %s", p.prog))
		}
		l, err := ex.Uprobe(p.prog, prog, &link.UprobeOptions{Address: p.addr, Offset: p.off, PID: pid})
		if err != nil {
			return fail(fmt.Errorf("attach %s at %#x+%#x: %w", p.prog, p.addr, p.off, err))
		}
		links = append(links, l)
	}
	return links, nil
}

// loadSpec loads one probe family's objects into the kernel with these
// constants, on the manager's shared maps.
func (m *Manager) loadSpec(s Spec, consts map[string]any, points []point, multi bool) (*ebpf.Collection, error) {
	cs, err := s.Load()
	if err != nil {
		return nil, fmt.Errorf("load objects: %w", err)
	}
	for name, v := range consts {
		vs, ok := cs.Variables[name]
		if !ok {
			return nil, fmt.Errorf("objects have no constant %s", name)
		}
		if err := vs.Set(v); err != nil {
			return nil, fmt.Errorf("set %s: %w", name, err)
		}
	}
	m.mu.Lock()
	replace := make(map[string]*ebpf.Map)
	for name, mp := range m.shared {
		if cs.Maps[name] != nil {
			replace[name] = mp
		}
	}
	m.mu.Unlock()
	if multi {
		for _, p := range points {
			if ps := cs.Programs[p.prog]; ps != nil {
				ps.AttachType = ebpf.AttachTraceUprobeMulti
			}
		}
	}
	coll, err := ebpf.NewCollectionWithOptions(cs, ebpf.CollectionOptions{MapReplacements: replace})
	if err != nil {
		return nil, fmt.Errorf("load into kernel: %w", err)
	}
	return coll, nil
}

func closeAll(links []link.Link) {
	for _, l := range links {
		l.Close()
	}
}
