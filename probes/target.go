package probes

import (
	"errors"
	"fmt"
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// awaitExit releases t once its process exits; it returns early when t is
// released for another reason (its pidfd closed). It costs no wake-up
// until then: the runtime's poller waits on the pidfd.
func (m *Manager) awaitExit(pid int, t *target) {
	rc, err := t.pidfd.SyscallConn()
	if err != nil {
		return
	}
	// A pidfd is readable once its process exited; it stays bound to that
	// process, so a reused pid cannot be mistaken for the target.
	err = rc.Read(func(fd uintptr) bool {
		return errors.Is(unix.PidfdSendSignal(int(fd), 0, nil, 0), unix.ESRCH)
	})
	if err != nil || !m.forget(pid, t) {
		return // released meanwhile (detached, shut down, or discovery saw the exit first)
	}
	// Said once done, as discovery's "detached" is: the line means the
	// kernel holds nothing of the target any more.
	start := time.Now()
	t.release()
	m.log.Info("target exited, probes released", "pid", pid, "took", time.Since(start).Round(time.Millisecond))
	select {
	case m.exited <- pid:
	default:
		m.log.Warn("exit not passed on: too many targets exited at once; their tracer state stays until shutdown", "pid", pid)
	}
}

// Detach releases everything attached to pid.
func (m *Manager) Detach(pid int) error {
	m.mu.Lock()
	t, ok := m.targets[pid]
	delete(m.targets, pid)
	m.mu.Unlock()
	if !ok {
		return fmt.Errorf("pid %d: not attached", pid)
	}
	return t.release()
}

// forget drops pid from the targets only while it is still t: the pid may
// have been reused, and attached again, since t's process exited.
func (m *Manager) forget(pid int, t *target) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.targets[pid] != t {
		return false
	}
	delete(m.targets, pid)
	return true
}

// release closes a target's links and objects. cilium/ebpf frees a
// collection's data-section maps in a GC cleanup: a collection now makes
// them go at once rather than at some later collection.
func (t *target) release() error {
	err := t.close()
	runtime.GC()
	return err
}

func (t *target) close() error {
	var errs []error
	for _, l := range t.links {
		errs = append(errs, l.Close())
	}
	for _, c := range t.colls {
		c.Close()
	}
	t.pidfd.Close()
	return errors.Join(errs...)
}

// Targets returns the pids currently instrumented.
func (m *Manager) Targets() []int {
	m.mu.Lock()
	defer m.mu.Unlock()
	pids := make([]int, 0, len(m.targets))
	for pid := range m.targets {
		pids = append(pids, pid)
	}
	return pids
}
