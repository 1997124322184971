package discovery

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Found is a selected Go process the watcher hands over for instrumenting.
type Found struct {
	ID
	Exe       string    // executable path, as /proc/PID/exe resolves it
	GoVersion string    // e.g. "go1.26.8", from its build info
	Rule      string    // the selector rule that matched, e.g. "exe=/opt/*/bin/*"
	Exec      time.Time // when the kernel reported its exec; zero when a scan found it
}

// WatchConfig is what a Watcher selects and whom it tells.
type WatchConfig struct {
	Selector *Selector
	// Found is called, from the watcher's goroutine, for each selected Go
	// process once. An error means it could not be instrumented: it is not
	// offered again until it execs anew.
	Found func(Found) error
	// Gone is called when a process Found accepted has exited, or has
	// exec'd another program (reason "exited" or "exec").
	Gone func(id ID, reason string)
	// Ready is called once, after every process selected by the initial
	// scan was offered to Found; n is how many Found accepted.
	Ready func(n int)
	// Rescan is the period of the safety-net scan of /proc (default 30 s).
	Rescan time.Duration
	Log    *slog.Logger
}

// DefaultRescan is how often /proc is scanned besides following events.
const DefaultRescan = 30 * time.Second

// Watcher follows processes as they start and stop: it scans /proc once,
// then follows exec and exit events of the kernel's process events
// connector, and scans again every Rescan in case events were lost — at
// once when the kernel says they were (a full socket buffer) or the
// connector fails. Nothing is polled per process between scans.
type Watcher struct {
	cfg  WatchConfig
	log  *slog.Logger
	self int
	goc  goCache

	known  map[int]tracked // accepted by Found, by pid
	failed map[int]tracked // selected but refused (not Go, Found failed)

	conn      *procConn
	batches   chan batch
	readers   sync.WaitGroup
	stopRead  chan struct{}
	lastLost  time.Time
	connFails int

	stats watchCounters
}

// Why /proc is scanned: at start, on the period, after the kernel dropped
// process events, after the event socket failed.
const (
	RescanStart = iota
	RescanPeriodic
	RescanEventsLost
	RescanEventsFailed
	rescanReasons
)

// RescanReasons name the reasons of WatchStats.Rescans, by index.
var RescanReasons = [rescanReasons]string{"start", "periodic", "events_lost", "events_failed"}

// watchCounters are written by Run's goroutine and read by Stats from any.
type watchCounters struct {
	execs, losses, binaries atomic.Uint64
	rescans                 [rescanReasons]atomic.Uint64
}

// WatchStats is what discovery did so far.
type WatchStats struct {
	Execs       uint64                // exec events received from the kernel
	EventLosses uint64                // times the kernel dropped process events
	Binaries    uint64                // executables read for Go build info (once per binary file)
	Rescans     [rescanReasons]uint64 // scans of /proc, by reason (RescanReasons)
}

// Stats returns the counters; safe from any goroutine.
func (w *Watcher) Stats() WatchStats {
	s := WatchStats{
		Execs:       w.stats.execs.Load(),
		EventLosses: w.stats.losses.Load(),
		Binaries:    w.stats.binaries.Load(),
	}
	for i := range s.Rescans {
		s.Rescans[i] = w.stats.rescans[i].Load()
	}
	return s
}

// tracked is a process the watcher decided on.
type tracked struct {
	id   ID
	exe  string
	seen uint64 // when it was looked at, on the events' clock (CLOCK_MONOTONIC ns)
}

// batch is what the reader goroutine passes on: events, or the news that
// some were lost (lost) or that the socket failed (err).
type batch struct {
	events []procEvent
	lost   bool
	err    error
}

// NewWatcher checks cfg; Run does the work.
func NewWatcher(cfg WatchConfig) (*Watcher, error) {
	if cfg.Selector.Empty() {
		return nil, errors.New("discovery: no selector rule")
	}
	if cfg.Found == nil || cfg.Gone == nil {
		return nil, errors.New("discovery: Found and Gone are required")
	}
	if cfg.Rescan <= 0 {
		cfg.Rescan = DefaultRescan
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	return &Watcher{
		cfg:     cfg,
		log:     cfg.Log,
		self:    os.Getpid(),
		known:   make(map[int]tracked),
		failed:  make(map[int]tracked),
		batches: make(chan batch, 256),
	}, nil
}

// Run watches until ctx is cancelled. It subscribes to process events
// before the initial scan, so a process started during the scan is seen by
// one or the other (the scan and the event agree on its identity).
func (w *Watcher) Run(ctx context.Context) error {
	w.connect()
	defer w.disconnect()
	w.rescan(ctx, RescanStart)
	if ctx.Err() != nil {
		return nil
	}
	if w.cfg.Ready != nil {
		w.cfg.Ready(len(w.known))
	}
	tick := time.NewTicker(w.cfg.Rescan)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case b := <-w.batches:
			switch {
			case b.err != nil:
				w.log.Warn("process events failed, rescanning /proc", "err", b.err, "rescan", w.cfg.Rescan)
				w.disconnect()
				w.rescan(ctx, RescanEventsFailed)
			case b.lost:
				// Log at most once a minute: a storm of execs can cause many.
				if time.Since(w.lastLost) > time.Minute {
					w.log.Warn("process events lost, rescanning /proc")
					w.lastLost = time.Now()
				}
				w.stats.losses.Add(1)
				w.drainBatches(ctx)
				w.rescan(ctx, RescanEventsLost)
			default:
				for _, ev := range b.events {
					w.handle(ctx, ev)
				}
			}
		case <-tick.C:
			if w.conn == nil {
				w.connect()
			}
			w.rescan(ctx, RescanPeriodic)
		}
	}
}

// drainBatches handles exits already read, so that the rescan after a loss
// starts from as fresh a state as possible; execs there are covered by it.
func (w *Watcher) drainBatches(ctx context.Context) {
	for {
		select {
		case b := <-w.batches:
			for _, ev := range b.events {
				if ev.What == procEventExit {
					w.handle(ctx, ev)
				}
			}
		default:
			return
		}
	}
}

func (w *Watcher) connect() {
	c, err := dialProcEvents()
	if err != nil {
		// Say it once, not every rescan.
		if w.connFails == 0 {
			w.log.Warn("no process events, discovery relies on rescanning /proc", "err", err, "rescan", w.cfg.Rescan)
		}
		w.connFails++
		return
	}
	if w.connFails > 0 {
		w.log.Info("process events subscribed again")
	}
	w.connFails = 0
	w.conn = c
	w.stopRead = make(chan struct{})
	w.readers.Add(1)
	go w.read(c, w.stopRead)
}

func (w *Watcher) disconnect() {
	if w.conn == nil {
		return
	}
	close(w.stopRead)
	w.conn.Close()
	w.readers.Wait()
	w.conn = nil
}

// read passes what the socket delivers to Run until the socket is closed.
//
// After an overflow (ENOBUFS) netlink delivers nothing more until the
// socket's queue has been read empty, so the loss is reported only then:
// the rescan it causes starts once events flow again, and nothing falls in
// between.
func (w *Watcher) read(c *procConn, stop <-chan struct{}) {
	defer w.readers.Done()
	send := func(b batch) bool {
		select {
		case w.batches <- b:
			return true
		case <-stop:
			return false
		}
	}
	raw, err := c.f.SyscallConn()
	if err != nil {
		send(batch{err: err})
		return
	}
	buf := make([]byte, 64<<10)
	congested := false
	for {
		var n int
		var rerr error
		err := raw.Read(func(fd uintptr) bool {
			n, rerr = unix.Read(int(fd), buf)
			// Wait for data, unless the queue just drained after an
			// overflow: that is news.
			return !errors.Is(rerr, unix.EAGAIN) || congested
		})
		select {
		case <-stop:
			return
		default:
		}
		if err == nil {
			err = rerr
		}
		switch {
		case errors.Is(err, unix.ENOBUFS):
			congested = true
			continue
		case congested && errors.Is(err, unix.EAGAIN):
			congested = false
			if !send(batch{lost: true}) {
				return
			}
			continue
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			send(batch{err: err})
			return
		}
		evs, perr := parseProcEvents(buf[:n])
		if len(evs) > 0 && !send(batch{events: evs}) {
			return
		}
		if perr != nil && !send(batch{lost: true}) { // a datagram we could not read whole
			return
		}
	}
}

// handle reacts to one event.
func (w *Watcher) handle(ctx context.Context, ev procEvent) {
	pid := ev.TGID
	switch ev.What {
	case procEventExec:
		w.stats.execs.Add(1)
		// After exec the pid and start time stay, the program does not.
		// An exec from before the watcher looked at the process is one it
		// has seen the result of (events queue up during the first scan).
		if t, ok := w.known[pid]; ok {
			if ev.Timestamp < t.seen {
				return
			}
			w.lose(pid, "exec")
		}
		if t, ok := w.failed[pid]; ok {
			if ev.Timestamp < t.seen {
				return
			}
			delete(w.failed, pid)
		}
		w.consider(ctx, pid, monoToWall(ev.Timestamp))
	case procEventExit:
		if ev.PID != ev.TGID {
			return // a thread, not the process
		}
		if _, ok := w.known[pid]; ok {
			w.lose(pid, "exited")
		}
		delete(w.failed, pid)
	}
}

func (w *Watcher) lose(pid int, reason string) {
	t := w.known[pid]
	delete(w.known, pid)
	w.cfg.Gone(t.id, reason)
}

// consider offers pid to Found if it is selected, a Go program, and not
// offered already. Processes not selected cost a readlink (and a read of
// their cgroup file when units are selected), nothing more. Nothing is
// offered once ctx is done: the agent is shutting down.
func (w *Watcher) consider(ctx context.Context, pid int, exec time.Time) {
	if pid == w.self || ctx.Err() != nil {
		return
	}
	seen := monoNow()
	exe, err := Exe(pid)
	if err != nil {
		return // gone already, or a kernel thread
	}
	var units func() Units
	if w.cfg.Selector.NeedsUnits() {
		units = func() Units {
			u, _ := UnitsOfPID(pid)
			return u
		}
	}
	rule, ok := w.cfg.Selector.Match(exe, units)
	if !ok {
		return
	}
	start, err := StartTime(pid)
	if err != nil {
		return
	}
	t := tracked{id: ID{PID: pid, Start: start}, exe: exe, seen: seen}
	if k, ok := w.known[pid]; ok {
		if k.id == t.id && k.exe == exe {
			return
		}
		// An exit or exec we did not hear of.
		if k.id == t.id {
			w.lose(pid, "exec")
		} else {
			w.lose(pid, "exited")
		}
	}
	if f, ok := w.failed[pid]; ok && f.id == t.id && f.exe == exe {
		return
	}
	delete(w.failed, pid)
	ver, isGo, read := w.goc.goVersion(pid)
	if read {
		w.stats.binaries.Add(1)
	}
	if !isGo {
		w.log.Debug("selected process is not a Go program", "pid", pid, "exe", exe)
		w.failed[pid] = t
		return
	}
	if err := w.cfg.Found(Found{ID: t.id, Exe: exe, GoVersion: ver, Rule: rule, Exec: exec}); err != nil {
		w.failed[pid] = t
		return
	}
	w.known[pid] = t
}

// rescan reconciles with /proc: processes gone or replaced are lost, new
// selected ones are offered.
func (w *Watcher) rescan(ctx context.Context, reason int) {
	w.stats.rescans[reason].Add(1)
	ents, err := os.ReadDir("/proc")
	if err != nil {
		w.log.Warn("cannot scan /proc", "err", err)
		return
	}
	present := make(map[int]bool, len(ents))
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid <= 0 {
			continue
		}
		present[pid] = true
		pids = append(pids, pid)
	}
	for pid, t := range w.known {
		if !present[pid] {
			w.lose(pid, "exited")
			continue
		}
		start, err := StartTime(pid)
		if err != nil || start != t.id.Start {
			w.lose(pid, "exited")
			continue
		}
		if exe, err := Exe(pid); err == nil && exe != t.exe {
			w.lose(pid, "exec")
		}
	}
	for pid := range w.failed {
		if !present[pid] {
			delete(w.failed, pid)
		}
	}
	for _, pid := range pids {
		w.consider(ctx, pid, time.Time{})
	}
}

// monoNow reads CLOCK_MONOTONIC, the clock of the events' timestamps
// (0 if it cannot: every event then counts as new).
func monoNow() uint64 {
	var ts unix.Timespec
	if unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts) != nil {
		return 0
	}
	return uint64(ts.Nano())
}

// monoToWall converts a CLOCK_MONOTONIC time in ns (the events' clock) to
// wall-clock time.
func monoToWall(ns uint64) time.Time {
	now := time.Now()
	var ts unix.Timespec
	if ns == 0 || unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts) != nil {
		return now
	}
	d := time.Duration(ts.Nano() - int64(ns))
	if d < 0 {
		d = 0
	}
	return now.Add(-d)
}
