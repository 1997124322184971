package probes

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/golens/golens/probes/event"
)

// target is one instrumented process and everything attached to it.
//
// A target's life ends in two steps. Released (releasing set), its links
// are closed: from then on no program of it runs, and no new event of it
// can come, but the ring may still hold events it emitted. It stays in the
// manager's targets, decoding those events with what it knows of its
// process, until a read pass that began after its links were closed has
// delivered them; only then is it forgotten (done closed), and may a new
// process with the same pid be attached.
type target struct {
	Target
	proc     *event.Process
	pidfd    *os.File  // pollable: readable once the process exited
	objs     *objects  // the manager's
	held     []*loaded // loaded objects t holds a reference to
	links    []link.Link
	attached []string // probe names

	releasing bool          // under Manager.mu: claimed by one releaser
	done      chan struct{} // closed once forgotten
}

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
	if err != nil || !m.claim(pid, t) {
		return // released meanwhile (detached, shut down, or discovery saw the exit first)
	}
	// Said once done, as discovery's "detached" is: the line means the
	// kernel holds nothing of the target any more.
	start := time.Now()
	m.release(pid, t)
	m.log.Info("target exited, probes released", "pid", pid, "took", time.Since(start).Round(time.Millisecond))
	select {
	case m.exited <- pid:
	default:
		m.log.Warn("exit not passed on: too many targets exited at once; their tracer state stays until shutdown", "pid", pid)
	}
}

// ErrNotAttached is Detach's answer for a pid that is not (or no longer) a
// target: the exit watcher may have released it first.
var ErrNotAttached = errors.New("not attached")

// Detach releases everything attached to pid. When it returns, every event
// the target emitted has been delivered.
func (m *Manager) Detach(pid int) error {
	m.mu.Lock()
	t, ok := m.targets[pid]
	m.mu.Unlock()
	if !ok || !m.claim(pid, t) {
		return fmt.Errorf("pid %d: %w", pid, ErrNotAttached)
	}
	return m.release(pid, t)
}

// claim makes the caller t's one releaser, while pid is still t (the pid
// may have been reused, and attached again, since t's process exited),
// nobody else is releasing it and the manager is not closing. The caller
// must then release it.
func (m *Manager) claim(pid int, t *target) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closing || m.targets[pid] != t || t.releasing {
		return false
	}
	t.releasing = true
	m.releasers.Add(1)
	return true
}

// release closes a claimed target's links and objects, waits until the
// events it left in the ring are delivered, and forgets it.
func (m *Manager) release(pid int, t *target) error {
	defer m.releasers.Done()
	m.unserve(pid)
	err := t.close()
	m.forgetPid(pid)
	m.awaitDrained()
	m.mu.Lock()
	if m.targets[pid] == t {
		delete(m.targets, pid)
	}
	m.mu.Unlock()
	close(t.done)
	// cilium/ebpf frees a collection's data-section maps in a GC cleanup:
	// a collection now makes them go at once rather than at some later one.
	runtime.GC()
	return err
}

// forgetPid deletes every entry of pid from the maps shared by all
// targets and keyed by pid first (Spec.PerPid). It is called once no
// program of that pid's target can run (its links closed): a request it
// left in flight, a context or goroutine it registered, would otherwise
// stay until evicted, there for a later process with the same pid to find
// (Go's heap starts at the same address in every process, and goroutine
// ids from 1, so a new process meets the old one's keys). Other targets
// change the maps meanwhile, which may make the walk see a key twice or
// start over: it is bounded, and what it missed is said once.
func (m *Manager) forgetPid(pid int) {
	m.mu.Lock()
	maps := m.perPid
	m.mu.Unlock()
	for _, mp := range maps {
		n, complete := deletePid(mp, uint32(pid))
		if !complete {
			m.log.Warn("shared map walk cut short: entries of a released target may stay until evicted",
				"pid", pid, "map", mp.String(), "deleted", n)
		}
	}
}

// deletePid deletes the entries of mp whose key starts with pid (host byte
// order, as the programs write it). It returns how many it deleted and
// whether the walk covered the whole map.
func deletePid(mp *ebpf.Map, pid uint32) (int, bool) {
	ks := int(mp.KeySize())
	if ks < 4 {
		return 0, true
	}
	var want [4]byte
	binary.NativeEndian.PutUint32(want[:], pid)
	var (
		found [][]byte
		cur   []byte // nil: from the first key
		// A key deleted by a program under the walk makes the kernel
		// start again from the first key: allow a few rounds.
		limit = 4 * int(mp.MaxEntries())
	)
	for steps := 0; ; steps++ {
		if steps > limit {
			break
		}
		next := make([]byte, ks)
		var err error
		if cur == nil {
			err = mp.NextKey(nil, &next)
		} else {
			err = mp.NextKey(cur, &next)
		}
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			n := deleteKeys(mp, found)
			return n, true
		}
		if err != nil {
			break
		}
		if [4]byte(next[:4]) == want {
			found = append(found, next)
		}
		cur = next
	}
	return deleteKeys(mp, found), false
}

func deleteKeys(mp *ebpf.Map, keys [][]byte) int {
	n := 0
	for _, k := range keys {
		if mp.Delete(k) == nil {
			n++
		}
	}
	return n
}

func (t *target) close() error {
	err := t.closeProbes()
	t.pidfd.Close()
	return err
}

// closeProbes closes t's links and objects.
func (t *target) closeProbes() error {
	var errs []error
	for _, l := range t.links {
		errs = append(errs, l.Close())
	}
	for _, l := range t.held {
		t.objs.put(l)
	}
	t.links, t.held, t.attached = nil, nil, nil
	return errors.Join(errs...)
}

// Targets returns the pids currently instrumented (not those being
// released).
func (m *Manager) Targets() []int {
	m.mu.Lock()
	defer m.mu.Unlock()
	pids := make([]int, 0, len(m.targets))
	for pid, t := range m.targets {
		if !t.releasing {
			pids = append(pids, pid)
		}
	}
	return pids
}
