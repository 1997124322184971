package probes

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/ringbuf"
	"github.com/cilium/ebpf/rlimit"

	"github.com/golens/golens/probes/contract"
	"github.com/golens/golens/probes/event"
)

// Handler receives every decoded event, one at a time: in the reader
// goroutine or, while a target is released, in its releaser's.
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
	// Sockets are the socket programs' counters by name (Spec.Sockets),
	// nil when none is attached.
	Sockets map[string]uint64
}

// Manager owns the shared kernel maps and every target's probes.
type Manager struct {
	specs    []Spec
	features map[string]bool
	handler  Handler
	clock    *Clock
	log      *slog.Logger

	mu      sync.Mutex
	events  *ebpf.Map            // shared ring buffer
	stats   *ebpf.Map            // shared per-CPU counters
	shared  map[string]*ebpf.Map // every map shared by all objects, by name
	perPid  []*ebpf.Map          // those of them keyed by pid first (Spec.PerPid)
	reader  *ringbuf.Reader
	sockets []Sockets // the features' socket programs, started once
	featErr error     // why a feature's socket programs are off
	targets map[int]*target
	// releasers are the releases in flight (a target's exit, a Detach):
	// Close waits for them, for they walk and read the shared maps it
	// closes. Once closing, nothing more is claimed.
	releasers sync.WaitGroup
	closing   bool
	objs      objects     // loaded programs, shared by targets with the same constants
	resolved  resolutions // what each binary file's families need, by file and bias
	refused   map[string]int
	decoders  map[uint32]Decoder

	eventsRead   atomic.Uint64
	decodeErrors atomic.Uint64
	panics       atomic.Uint64 // handler panics since start
	panicLogged  atomic.Int64  // unix ns of the last panic logged
	exited       chan int

	passes passes         // who reads the ring, and how far
	rec    ringbuf.Record // the record being read, reused by every pass

	// afterInspect, set by tests, runs between a target's inspection and
	// the attach of its probes: where an exec must not mislead them.
	afterInspect func(pid int)
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
	m.passes.cond.L = &m.passes.mu
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

func (m *Manager) countRefusal(err error) { m.countReason(refusalReason(err)) }

// countReason counts one refusal under reason.
func (m *Manager) countReason(reason string) {
	m.mu.Lock()
	m.refused[reason]++
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
	perPid := make(map[string]bool)
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
		for _, name := range s.PerPid {
			perPid[name] = true
		}
		names := append([]string{contract.MapEvents, contract.MapStats}, s.Shared...)
		for _, name := range append(names, s.PerPid...) {
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
	if shared[contract.MapEvents] == nil || shared[contract.MapStats] == nil {
		closeShared()
		return errors.New("probe objects declare no events ring buffer or stats array")
	}
	rd, err := ringbuf.NewReader(shared[contract.MapEvents])
	if err != nil {
		closeShared()
		return fmt.Errorf("open ring buffer reader: %w", err)
	}
	m.events, m.stats, m.shared, m.reader = shared[contract.MapEvents], shared[contract.MapStats], shared, rd
	for name := range perPid {
		if mp := shared[name]; mp != nil {
			m.perPid = append(m.perPid, mp)
		}
	}
	m.startSockets()
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

// Stats returns the current counters.
func (m *Manager) Stats() Stats {
	s := Stats{
		EventsRead:   m.eventsRead.Load(),
		DecodeErrors: m.decodeErrors.Load(),
		Attached:     make(map[string]int),
		Refused:      make(map[string]int),
	}
	m.mu.Lock()
	for _, t := range m.targets {
		if t.releasing {
			continue
		}
		s.Targets++
		for _, name := range t.attached {
			s.Attached[name]++
		}
	}
	for k, v := range m.refused {
		s.Refused[k] = v
	}
	statsMap, socks := m.stats, m.sockets
	m.mu.Unlock()
	if statsMap != nil {
		// A slot that cannot be read counts as none seen: Stats is for
		// metrics, which go on without it.
		s.ProbeHits, _ = SumSlot(statsMap, contract.StatHits)
		s.EventsLost, _ = SumSlot(statsMap, contract.StatLost)
		s.OrphanReturns, _ = SumSlot(statsMap, contract.StatNoEntry)
	}
	if len(socks) > 0 {
		s.Sockets = make(map[string]uint64)
		for _, sk := range socks {
			for k, v := range sk.Stats() {
				s.Sockets[k] += v
			}
		}
	}
	return s
}

// Close detaches the socket programs and releases the shared maps. Call
// after Run returned.
func (m *Manager) Close() error {
	m.mu.Lock()
	m.closing = true
	m.mu.Unlock()
	m.releasers.Wait()
	m.mu.Lock()
	defer m.mu.Unlock()
	var errs []error
	errs = append(errs, m.closeSockets())
	if m.reader != nil {
		errs = append(errs, m.reader.Close())
	}
	for _, mp := range m.shared {
		errs = append(errs, mp.Close())
	}
	return errors.Join(errs...)
}

// RingFill is how full the events ring buffer is, 0 to 1: what the reader
// has still to read. 0 before any target was attached.
func (m *Manager) RingFill() float64 {
	m.mu.Lock()
	rd := m.reader
	m.mu.Unlock()
	if rd == nil || rd.BufferSize() == 0 {
		return 0
	}
	return float64(rd.AvailableBytes()) / float64(rd.BufferSize())
}
