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
	m.mu.Lock()
	targets := m.targets
	m.targets = make(map[int]*target)
	m.mu.Unlock()
	// Closing links waits for the kernel's uprobe grace periods: let the
	// targets' waits overlap.
	var cwg sync.WaitGroup
	for _, t := range targets {
		cwg.Add(1)
		go func() { defer cwg.Done(); t.close() }()
	}
	cwg.Wait()
	// Events already in the ring were paid for by the target: deliver them.
	m.drain()
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

func (m *Manager) readLoop(ctx context.Context) error {
	var rec ringbuf.Record
	stop := context.AfterFunc(ctx, func() { m.reader.Flush() })
	defer stop()
	wait := pollInterval
	for ctx.Err() == nil {
		m.mu.Lock()
		idle := len(m.targets) == 0
		m.mu.Unlock()
		deadline := time.Now().Add(wait)
		if idle {
			deadline = time.Time{} // until Attach or shutdown flushes
		}
		m.reader.SetDeadline(deadline)
		n, flushed := 0, false
		for {
			err := m.reader.ReadInto(&rec)
			if err != nil {
				if errors.Is(err, os.ErrDeadlineExceeded) {
					break
				}
				if errors.Is(err, ringbuf.ErrFlushed) {
					flushed = true
					break
				}
				if errors.Is(err, ringbuf.ErrClosed) {
					return nil
				}
				return fmt.Errorf("read ring buffer: %w", err)
			}
			n++
			m.dispatch(rec.RawSample)
		}
		if n > 0 || flushed {
			wait = pollInterval
		} else {
			wait = min(2*wait, idlePoll)
		}
	}
	return nil
}

func (m *Manager) drain() {
	var rec ringbuf.Record
	m.reader.SetDeadline(time.Now())
	for {
		if err := m.reader.ReadInto(&rec); err != nil {
			return
		}
		m.dispatch(rec.RawSample)
	}
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
		// A kind we do not know, or a target already released: count it.
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
			m.log.Error("event handler panicked; event dropped", "panic", r, "stack", string(debug.Stack()))
		}
	}()
	m.handler(ev)
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
