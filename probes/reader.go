package probes

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"sync"
	"time"

	"github.com/cilium/ebpf/ringbuf"

	"github.com/golens/golens/probes/event"
)

// Run reads events and watches targets until ctx is cancelled, then drains
// what is left in the ring buffer and releases every target.
func (m *Manager) Run(ctx context.Context) error {
	if err := m.ensureShared(); err != nil {
		return err
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		m.resyncClock(ctx)
	}()
	err := m.readLoop(ctx)
	wg.Wait()
	// Targets a releaser holds are its to finish (it reads the ring
	// itself now that the loop is gone).
	m.mu.Lock()
	targets := make(map[int]*target)
	for pid, t := range m.targets {
		if !t.releasing {
			t.releasing = true
			targets[pid] = t
		}
	}
	m.mu.Unlock()
	// Closing links waits for the kernel's uprobe grace periods: let the
	// targets' waits overlap.
	var cwg sync.WaitGroup
	for pid, t := range targets {
		cwg.Add(1)
		go func() { defer cwg.Done(); m.unserve(pid); t.close() }()
	}
	cwg.Wait()
	// Events already in the ring were paid for by the target: deliver them.
	m.readPass(time.Now())
	m.mu.Lock()
	for pid, t := range targets {
		delete(m.targets, pid)
		close(t.done)
	}
	m.mu.Unlock()
	return err
}

// The reader is not woken per event (see event_submit in C: only a ring
// filling up wakes it), so it polls: every pollInterval while events come,
// backing off to idlePoll while none do (a new target resets it), and not
// at all without targets.
// An event waits in the ring at most idlePoll; an idle agent wakes once a
// second.
const (
	pollInterval = 100 * time.Millisecond
	idlePoll     = time.Second
)

// passes orders the reads of the ring. A read pass reads until the ring is
// empty and its deadline passed, or until a Flush: it has delivered every
// event committed before it began. Passes never overlap, so the handler
// sees one event at a time, and a releaser can wait for a pass that began
// after its target's links were closed (see awaitDrained).
type passes struct {
	mu      sync.Mutex
	cond    sync.Cond // L is &mu; signalled when a pass ends or the loop stops
	done    uint64    // passes completed
	running bool      // a pass is in progress
	loop    bool      // readLoop is running: it will start passes
	waiting int       // releasers waiting for a pass
}

func (m *Manager) readLoop(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { m.reader.Flush() })
	defer stop()
	p := &m.passes
	p.mu.Lock()
	p.loop = true
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.loop = false
		p.cond.Broadcast()
		p.mu.Unlock()
	}()
	wait := pollInterval
	for ctx.Err() == nil {
		m.mu.Lock()
		idle := len(m.targets) == 0
		m.mu.Unlock()
		deadline := time.Now().Add(wait)
		if idle {
			deadline = time.Time{} // until Attach or shutdown flushes
		}
		n, flushed, err := m.readPass(deadline)
		if errors.Is(err, ringbuf.ErrClosed) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read ring buffer: %w", err)
		}
		if n > 0 || flushed {
			wait = pollInterval
		} else {
			wait = min(2*wait, idlePoll)
		}
	}
	return nil
}

// readPass delivers events until the ring is empty once deadline passed
// (a zero deadline: until a Flush), and reports how many it read and
// whether a Flush ended it. It waits for a pass in progress to end first.
func (m *Manager) readPass(deadline time.Time) (n int, flushed bool, err error) {
	p := &m.passes
	p.mu.Lock()
	for p.running {
		p.cond.Wait()
	}
	p.running = true
	if p.waiting > 0 {
		deadline = time.Now() // a releaser waits for this pass: do not linger
	}
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.running = false
		p.done++
		p.cond.Broadcast()
		p.mu.Unlock()
	}()
	m.reader.SetDeadline(deadline)
	for {
		err := m.reader.ReadInto(&m.rec)
		switch {
		case err == nil:
			n++
			m.dispatch(m.rec.RawSample)
		case errors.Is(err, os.ErrDeadlineExceeded):
			return n, false, nil
		case errors.Is(err, ringbuf.ErrFlushed):
			return n, true, nil
		default:
			return n, false, err
		}
	}
}

// awaitDrained returns once a read pass that began after the call has
// ended: every event committed to the ring before the call has then been
// delivered. The reader loop runs that pass, woken at once; when there is
// no loop (before Run, or after it returned) the caller runs it.
func (m *Manager) awaitDrained() {
	p := &m.passes
	p.mu.Lock()
	want := p.done + 1
	if p.running {
		want++ // the pass in progress may have begun before the call
	}
	p.waiting++
	p.mu.Unlock()
	m.reader.Flush() // end the pass in progress now, not at its deadline
	p.mu.Lock()
	for p.done < want {
		if !p.loop && !p.running {
			p.mu.Unlock()
			m.readPass(time.Now())
			p.mu.Lock()
			continue
		}
		p.cond.Wait()
	}
	p.waiting--
	p.mu.Unlock()
}

// header mirrors struct event_header.
type header struct {
	Kind uint32
	PID  uint32
}

func (m *Manager) dispatch(raw []byte) {
	m.eventsRead.Add(1)
	h, err := View[header](raw)
	if err != nil {
		m.decodeErrors.Add(1)
		return
	}
	dec := m.decoders[h.Kind]
	m.mu.Lock()
	t := m.targets[int(h.PID)]
	m.mu.Unlock()
	if dec == nil || t == nil {
		// A kind we do not know, or a pid never attached: count it. (A
		// released target stays known until its events are delivered.)
		m.decodeErrors.Add(1)
		return
	}
	ev, err := dec(raw, &t.Target)
	if err != nil {
		m.decodeErrors.Add(1)
		m.log.Debug("decode event", "kind", h.Kind, "pid", h.PID, "err", err)
		return
	}
	m.handle(ev)
}

// handle delivers one event; a bug in what handles it costs that event,
// counted and logged, never the agent and everything it watches.
func (m *Manager) handle(ev event.Event) {
	defer func() {
		if r := recover(); r != nil {
			m.decodeErrors.Add(1)
			m.logPanic(r)
		}
	}()
	m.handler(ev)
}

// panicLogEvery bounds the handler-panic log: a bug that every event hits
// must cost one stack per interval, not one per event.
const panicLogEvery = 10 * time.Second

func (m *Manager) logPanic(r any) {
	n := m.panics.Add(1)
	now := time.Now().UnixNano()
	last := m.panicLogged.Load()
	if last != 0 && now-last < int64(panicLogEvery) || !m.panicLogged.CompareAndSwap(last, now) {
		return
	}
	m.log.Error("event handler panicked; event dropped (logged at most every 10s)", "panic", r, "panics", n, "stack", string(debug.Stack()))
}

// resyncClock keeps the kernel-to-wall clock offset fresh until ctx is done.
func (m *Manager) resyncClock(ctx context.Context) {
	resync := time.NewTicker(time.Minute)
	defer resync.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-resync.C:
			m.clock.Sync()
		}
	}
}
