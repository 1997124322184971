package probes

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/features"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"

	"github.com/golens/golens/probes/event"
	"github.com/golens/golens/probes/inspect"
)

// Handler receives every decoded event, in the reader goroutine.
type Handler func(event.Event)

// Stats are the manager's counters, for golens_ metrics.
type Stats struct {
	ProbeHits     uint64 // programs run in targets (each one a probe hit)
	EventsRead    uint64
	EventsLost    uint64 // ring buffer full: dropped in the kernel
	DecodeErrors  uint64
	OrphanReturns uint64 // returns whose entry was not seen
	Targets       int
	Attached      map[string]int // probe name -> targets it is attached to
	Refused       map[string]int // reason -> count since start
}

// Manager owns the shared kernel maps and every target's probes.
type Manager struct {
	specs    []Spec
	features map[string]bool
	handler  Handler
	clock    *Clock
	log      *slog.Logger

	mu       sync.Mutex
	events   *ebpf.Map            // shared ring buffer
	stats    *ebpf.Map            // shared per-CPU counters
	shared   map[string]*ebpf.Map // every map shared by all objects, by name
	reader   *ringbuf.Reader
	targets  map[int]*target
	refused  map[string]int
	decoders map[uint32]Decoder

	eventsRead   atomic.Uint64
	decodeErrors atomic.Uint64
	exited       chan int
}

// target is one instrumented process and everything attached to it.
type target struct {
	Target
	proc     *event.Process
	pidfd    *os.File // pollable: readable once the process exited
	colls    []*ebpf.Collection
	links    []link.Link
	attached []string // probe names
}

// Feature names an opt-in, costly hook set.
const (
	// FeatureGoroutines tracks goroutine ancestry (one probe hit per `go`
	// statement) so calls made from goroutines that dropped the request's
	// context still find their parent span.
	FeatureGoroutines = "goroutines"
	// FeatureInject announces outgoing requests to the socket programs that
	// add a traceparent on the wire (--inject-context).
	FeatureInject = "inject"
)

// NewManager prepares a manager for the given probe families, with the
// opt-in features asked for. Nothing is loaded until the first Attach.
func NewManager(specs []Spec, features []string, h Handler, log *slog.Logger) *Manager {
	m := &Manager{
		features: make(map[string]bool),
		specs:    specs,
		handler:  h,
		clock:    NewClock(),
		log:      log,
		targets:  make(map[int]*target),
		refused:  make(map[string]int),
		decoders: make(map[uint32]Decoder),
		exited:   make(chan int, 1024),
	}
	for _, f := range features {
		m.features[f] = true
	}
	for _, s := range specs {
		for k, d := range s.Decoders {
			m.decoders[k] = d
		}
	}
	return m
}

// Exited delivers the pid of every target that exited and was released.
func (m *Manager) Exited() <-chan int { return m.exited }

// Attachment reports what Attach did for one target.
type Attachment struct {
	Probes  []string         // probe families attached
	Refused map[string]error // probe family -> why it was refused
	Uprobes int              // uprobes attached in all
	Skipped []string         // optional hooks left out, with the reason
}

// Attach instruments process pid. It returns an error when no probe family
// could be attached; families that fail are reported in Attachment.Refused.
func (m *Manager) Attach(pid int, proc *event.Process) (Attachment, error) {
	res := Attachment{Refused: make(map[string]error)}
	m.mu.Lock()
	_, dup := m.targets[pid]
	m.mu.Unlock()
	if dup {
		return res, fmt.Errorf("pid %d: already attached", pid)
	}
	exe := fmt.Sprintf("/proc/%d/exe", pid)
	fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if err != nil {
		return res, fmt.Errorf("pid %d: no such process: %w", pid, err)
	}
	// Non-blocking, so the runtime's poller waits for the exit.
	pidfd := os.NewFile(uintptr(fd), fmt.Sprintf("pidfd:%d", pid))
	bin, err := inspect.Open(exe)
	if err != nil {
		pidfd.Close()
		if errors.Is(err, inspect.ErrNotGo) {
			return res, fmt.Errorf("pid %d (%s): %w", pid, exeName(pid), ErrNotGo)
		}
		return res, fmt.Errorf("pid %d: read executable: %w", pid, err)
	}
	defer bin.Close()
	if proc.GoVersion == "" {
		proc.GoVersion = bin.GoVersion
	}
	if err := m.ensureShared(); err != nil {
		pidfd.Close()
		return res, err
	}
	ex, err := link.OpenExecutable(exe)
	if err != nil {
		pidfd.Close()
		return res, fmt.Errorf("pid %d: %w", pid, err)
	}
	t := &target{proc: proc, pidfd: pidfd}
	t.Target = Target{Proc: proc, Clock: m.clock, ErrorType: errorTypes(bin, pid)}
	for _, s := range m.specs {
		if s.Library != "" && !bin.HasFunc(s.Library) {
			continue // the program does not use this library
		}
		coll, links, npoints, skipped, err := m.attachSpec(s, bin, ex, pid)
		if err != nil {
			res.Refused[s.Name] = err
			m.countRefusal(err)
			continue
		}
		res.Skipped = append(res.Skipped, skipped...)
		t.colls = append(t.colls, coll)
		t.links = append(t.links, links...)
		t.attached = append(t.attached, s.Name)
		res.Uprobes += npoints
	}
	res.Probes = t.attached
	if len(t.attached) == 0 {
		pidfd.Close()
		return res, fmt.Errorf("pid %d (%s): no probe could be attached: %w", pid, exeName(pid), joinRefusals(res.Refused))
	}
	m.mu.Lock()
	m.targets[pid] = t
	m.mu.Unlock()
	go m.awaitExit(pid, t)
	if m.reader != nil {
		// Wake the reader: it waits without a deadline while there is no
		// target, and a new target's first events should not wait for a
		// quiet reader's longest poll.
		m.reader.Flush()
	}
	return res, nil
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

// errorTypes resolves error itab addresses of a running process to type
// names, from the binary's symbols shifted by where the process loaded it.
func errorTypes(bin *inspect.Binary, pid int) func(uint64) string {
	itabs := bin.ErrorItabs()
	var bias uint64
	if bin.PIE && len(itabs) > 0 {
		bias = loadBase(pid)
	}
	return func(itab uint64) string {
		return itabs[itab-bias]
	}
}

// loadBase is the address the executable of pid is mapped at (its mapping
// of file offset 0). Go PIE binaries are linked at 0, so this is the bias.
func loadBase(pid int) uint64 {
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		return 0
	}
	maps, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(maps), "\n") {
		f := strings.Fields(line)
		if len(f) < 6 || f[2] != "00000000" || f[5] != exe {
			continue
		}
		start, _, _ := strings.Cut(f[0], "-")
		v, err := strconv.ParseUint(start, 16, 64)
		if err == nil {
			return v
		}
	}
	return 0
}

func joinRefusals(r map[string]error) error {
	var errs []error
	for name, err := range r {
		errs = append(errs, fmt.Errorf("%s: %w", name, err))
	}
	return errors.Join(errs...)
}

// refusalReason names the metric label for why a probe was refused.
func refusalReason(err error) string {
	switch {
	case errors.Is(err, ErrUnsupportedGo):
		return "unsupported_go"
	case errors.Is(err, ErrNoOffsets):
		return "no_offsets"
	case errors.Is(err, ErrNoFunction):
		return "no_function"
	default:
		return "attach_failed"
	}
}

func (m *Manager) countRefusal(err error) {
	m.mu.Lock()
	m.refused[refusalReason(err)]++
	m.mu.Unlock()
}

func exeName(pid int) string {
	p, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		return "?"
	}
	return filepath.Base(p)
}

// ensureShared creates, on first use, the maps every loaded object shares:
// the ring buffer, the stats array and those the specs list as Shared.
func (m *Manager) ensureShared() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.events != nil {
		return nil
	}
	if len(m.specs) == 0 {
		return errors.New("no probes configured")
	}
	// Locked memory is charged to the memory cgroup on current kernels;
	// where the limit cannot be raised this is a harmless no-op.
	_ = rlimit.RemoveMemlock()
	shared := make(map[string]*ebpf.Map)
	closeShared := func() {
		for _, mp := range shared {
			mp.Close()
		}
	}
	for _, s := range m.specs {
		cs, err := s.Load()
		if err != nil {
			closeShared()
			return fmt.Errorf("load %s objects: %w", s.Name, err)
		}
		for _, name := range append([]string{"events", "stats"}, s.Shared...) {
			if shared[name] != nil || cs.Maps[name] == nil {
				continue
			}
			mp, err := ebpf.NewMap(cs.Maps[name])
			if err != nil {
				closeShared()
				return fmt.Errorf("create shared map %s: %w", name, err)
			}
			shared[name] = mp
		}
	}
	if shared["events"] == nil || shared["stats"] == nil {
		closeShared()
		return errors.New("probe objects declare no events ring buffer or stats array")
	}
	rd, err := ringbuf.NewReader(shared["events"])
	if err != nil {
		closeShared()
		return fmt.Errorf("open ring buffer reader: %w", err)
	}
	m.events, m.stats, m.shared, m.reader = shared["events"], shared["stats"], shared, rd
	return nil
}

// Shared returns the shared map of that name (nil when no spec has it).
func (m *Manager) Shared(name string) (*ebpf.Map, error) {
	if err := m.ensureShared(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.shared[name], nil
}

// point is one uprobe to attach: a program at a file offset.
type point struct {
	prog string
	addr uint64 // file offset of the function
	off  uint64 // offset inside it
}

// resolveHook finds where a hook's programs go and the constants it needs.
func resolveHook(h Hook, bin *inspect.Binary) ([]point, map[string]any, error) {
	fn, err := bin.Func(h.Symbol)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", h.Symbol, ErrNoFunction)
	}
	consts := make(map[string]any)
	for k, v := range h.Consts {
		consts[k] = v
	}
	if err := resolveFields(consts, h.Fields, bin); err != nil {
		return nil, nil, err
	}
	var pts []point
	if h.Entry != "" {
		// At the frame push rather than the first instruction: the kernel
		// emulates a push, while the stack-bound check before it would be
		// single-stepped (a second trap; measured +20 µs a request here).
		at, _ := bin.PushFrame(fn)
		pts = append(pts, point{h.Entry, fn.FileOffset, at})
	}
	if h.Return != "" {
		rets, err := bin.Returns(fn)
		if err != nil {
			return nil, nil, fmt.Errorf("find returns of %s: %w", h.Symbol, err)
		}
		if len(rets) == 0 {
			return nil, nil, fmt.Errorf("%s has no RET instruction", h.Symbol)
		}
		for _, r := range rets {
			pts = append(pts, point{h.Return, fn.FileOffset, r})
		}
	}
	return pts, consts, nil
}

// attachSpec loads one probe family for one target and attaches its hooks.
// Optional hooks that cannot be attached are reported in skipped.
// It returns the collection, its links, and the number of probe points
// (entry and RET instructions) those links cover.
func (m *Manager) attachSpec(s Spec, bin *inspect.Binary, ex *link.Executable, pid int) (coll *ebpf.Collection, links []link.Link, npoints int, skipped []string, err error) {
	minor := goMinor(bin.GoVersion)
	if minor < s.MinGo {
		return nil, nil, 0, nil, fmt.Errorf("%s is older than go1.%d: %w", bin.GoVersion, s.MinGo, ErrUnsupportedGo)
	}
	cs, err := s.Load()
	if err != nil {
		return nil, nil, 0, nil, fmt.Errorf("load objects: %w", err)
	}
	consts, err := resolveConstants(s, bin)
	if err != nil {
		return nil, nil, 0, nil, err
	}
	// Resolve every hook before loading anything, so a refusal costs nothing.
	var points []point
	for _, h := range s.Hooks {
		if h.Feature != "" && !m.features[h.Feature] {
			continue
		}
		pts, hconsts, err := resolveHook(h, bin)
		if err != nil {
			if h.Optional {
				skipped = append(skipped, fmt.Sprintf("%s: %v", h.Name, err))
				continue
			}
			return nil, nil, 0, nil, err
		}
		for k, v := range hconsts {
			consts[k] = v
		}
		points = append(points, pts...)
	}
	if s.Tune != nil {
		for k, v := range s.Tune(bin) {
			consts[k] = v
		}
	}
	for f, fc := range s.FeatureConsts {
		if m.features[f] {
			for k, v := range fc {
				consts[k] = v
			}
		}
	}
	for _, g := range s.Globals {
		addr, ok := bin.DataSymbol(g.Symbol)
		if !ok {
			skipped = append(skipped, fmt.Sprintf("%s: no symbol table", g.Symbol))
			continue
		}
		off, err := fieldOffset(bin, g.Field.Struct, g.Field.Field)
		if err != nil {
			skipped = append(skipped, fmt.Sprintf("%s: %v", g.Symbol, err))
			continue
		}
		if bin.PIE {
			addr += loadBase(pid)
		}
		consts[g.AddrConst] = addr
		consts[g.Field.Const] = off
	}
	for name, v := range consts {
		vs, ok := cs.Variables[name]
		if !ok {
			return nil, nil, 0, nil, fmt.Errorf("objects have no constant %s", name)
		}
		if err := vs.Set(v); err != nil {
			return nil, nil, 0, nil, fmt.Errorf("set %s: %w", name, err)
		}
	}
	replace := make(map[string]*ebpf.Map)
	for name, mp := range m.shared {
		if cs.Maps[name] != nil {
			replace[name] = mp
		}
	}
	// With uprobe_multi links (Linux 6.6+) each program is one link per
	// target, whatever its number of points: closing a link pays the
	// kernel's uprobe unregister grace period (~0.1 s, serialised across
	// perf-event uprobes) once instead of once per point.
	multi := features.HaveBPFLinkUprobeMulti() == nil
	if multi {
		for _, p := range points {
			if ps := cs.Programs[p.prog]; ps != nil {
				ps.AttachType = ebpf.AttachTraceUprobeMulti
			}
		}
	}
	coll, err = ebpf.NewCollectionWithOptions(cs, ebpf.CollectionOptions{MapReplacements: replace})
	if err != nil {
		return nil, nil, 0, nil, fmt.Errorf("load into kernel: %w", err)
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
				closeAll(links)
				coll.Close()
				return nil, nil, 0, nil, fmt.Errorf("objects have no program %s", name)
			}
			l, err := ex.UprobeMulti(nil, prog, &link.UprobeMultiOptions{Addresses: byProg[name], PID: uint32(pid)})
			if err != nil {
				closeAll(links)
				coll.Close()
				return nil, nil, 0, nil, fmt.Errorf("attach %s at %#x: %w", name, byProg[name], err)
			}
			links = append(links, l)
		}
		return coll, links, len(points), skipped, nil
	}
	for _, p := range points {
		prog := coll.Programs[p.prog]
		if prog == nil {
			closeAll(links)
			coll.Close()
			return nil, nil, 0, nil, fmt.Errorf("objects have no program %s", p.prog)
		}
		l, err := ex.Uprobe(p.prog, prog, &link.UprobeOptions{Address: p.addr, Offset: p.off, PID: pid})
		if err != nil {
			closeAll(links)
			coll.Close()
			return nil, nil, 0, nil, fmt.Errorf("attach %s at %#x+%#x: %w", p.prog, p.addr, p.off, err)
		}
		links = append(links, l)
	}
	return coll, links, len(points), skipped, nil
}

func closeAll(links []link.Link) {
	for _, l := range links {
		l.Close()
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

// Stats returns the current counters.
func (m *Manager) Stats() Stats {
	s := Stats{
		EventsRead:   m.eventsRead.Load(),
		DecodeErrors: m.decodeErrors.Load(),
		Attached:     make(map[string]int),
		Refused:      make(map[string]int),
	}
	m.mu.Lock()
	s.Targets = len(m.targets)
	for _, t := range m.targets {
		for _, name := range t.attached {
			s.Attached[name]++
		}
	}
	for k, v := range m.refused {
		s.Refused[k] = v
	}
	statsMap := m.stats
	m.mu.Unlock()
	if statsMap != nil {
		s.ProbeHits = sumSlot(statsMap, 0)
		s.EventsLost = sumSlot(statsMap, 1)
		s.OrphanReturns = sumSlot(statsMap, 2)
	}
	return s
}

func sumSlot(mp *ebpf.Map, slot uint32) uint64 {
	var per []uint64
	if err := mp.Lookup(slot, &per); err != nil {
		return 0
	}
	var n uint64
	for _, v := range per {
		n += v
	}
	return n
}

// Close releases the shared maps. Call after Run returned.
func (m *Manager) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var errs []error
	if m.reader != nil {
		errs = append(errs, m.reader.Close())
	}
	for _, mp := range m.shared {
		errs = append(errs, mp.Close())
	}
	return errors.Join(errs...)
}

// goMinor returns 23 for "go1.23.4"; 0 when unknown. A development build is
// taken as the newest release.
func goMinor(v string) int {
	if strings.HasPrefix(v, "devel") {
		return 1 << 10
	}
	rest, ok := strings.CutPrefix(v, "go1.")
	if !ok {
		return 0
	}
	n := 0
	for _, c := range rest {
		if c < '0' || c > '9' {
			break
		}
		n = n*10 + int(c-'0')
	}
	return n
}
