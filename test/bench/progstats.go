package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/golens/golens/test/harness"
)

// progTime totals the kernel's run statistics of a set of eBPF programs.
type progTime struct {
	Runs   uint64
	Time   time.Duration
	ByProg map[string]uint64 // runs by program name, as the kernel keeps it
	// TimeByProg is run time by program name.
	TimeByProg map[string]time.Duration
	// SkMsg and SockOps are the --inject-context programs' share of Runs
	// and Time: the wire's own cost, not a uprobe's.
	SkMsg, SockOps progRun
}

// progRun is one kind of program's runs and run time.
type progRun struct {
	Runs uint64
	Time time.Duration
}

// PerRun is the mean run time; 0 when it did not run.
func (p progRun) PerRun() time.Duration {
	if p.Runs == 0 {
		return 0
	}
	return p.Time / time.Duration(p.Runs)
}

func (p progRun) sub(q progRun) progRun { return progRun{Runs: p.Runs - q.Runs, Time: p.Time - q.Time} }

// hitSplit is probe hits per request by what the program serves.
type hitSplit struct {
	Server, Client, Other float64
}

// Total is all hits per request.
func (h hitSplit) Total() float64 { return h.Server + h.Client + h.Other }

// splitHits divides program runs by the requests they served, grouped by the
// program's name: the kernel keeps the first 15 characters of
// uprobe_server_entry and the like, which still tell the group.
func splitHits(byProg map[string]uint64, requests int) hitSplit {
	var h hitSplit
	for name, runs := range byProg {
		v := float64(runs) / float64(requests)
		switch {
		case strings.HasPrefix(name, "uprobe_server"):
			h.Server += v
		case strings.HasPrefix(name, "uprobe_client"):
			h.Client += v
		default:
			h.Other += v
		}
	}
	return h
}

// progStats measures how long golens' own eBPF programs run, to split a
// probe hit into the trap (what the empty program costs) and the program.
// The kernel counts this only while statistics are on, which costs every
// program run a little, so it is switched on for the warm-up only.
type progStats struct {
	stats io.Closer
	progs []*ebpf.Program
	names []string // of progs, same order
	types []ebpf.ProgramType
	start progTime
}

// startProgStats turns run statistics on and notes where the programs that
// process pid holds stand.
func startProgStats(pid int) (*progStats, error) {
	ids, err := harness.ProgramIDs(pid)
	if err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("process %d holds no eBPF programs", pid)
	}
	s := &progStats{}
	for _, id := range ids {
		p, err := ebpf.NewProgramFromID(id)
		if err != nil {
			s.close()
			return nil, fmt.Errorf("open eBPF program %d: %w", id, err)
		}
		s.progs = append(s.progs, p)
		name, typ := fmt.Sprintf("prog-%d", id), ebpf.UnspecifiedProgram
		if info, err := p.Info(); err == nil {
			if info.Name != "" {
				name = info.Name
			}
			typ = info.Type
		}
		s.names = append(s.names, name)
		s.types = append(s.types, typ)
	}
	if s.stats, err = ebpf.EnableStats(unix.BPF_STATS_RUN_TIME); err != nil {
		s.close()
		return nil, fmt.Errorf("enable BPF run statistics: %w", err)
	}
	if s.start, err = s.read(); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

// stop turns statistics off and returns what ran since start.
func (s *progStats) stop() (progTime, error) {
	defer s.close()
	end, err := s.read()
	if err != nil {
		return progTime{}, err
	}
	d := progTime{Runs: end.Runs - s.start.Runs, Time: end.Time - s.start.Time, ByProg: map[string]uint64{}, TimeByProg: map[string]time.Duration{},
		SkMsg: end.SkMsg.sub(s.start.SkMsg), SockOps: end.SockOps.sub(s.start.SockOps)}
	for name, runs := range end.ByProg {
		d.ByProg[name] = runs - s.start.ByProg[name]
		d.TimeByProg[name] = end.TimeByProg[name] - s.start.TimeByProg[name]
	}
	return d, nil
}

func (s *progStats) read() (progTime, error) {
	t := progTime{ByProg: map[string]uint64{}, TimeByProg: map[string]time.Duration{}}
	for i, p := range s.progs {
		st, err := p.Stats()
		if err != nil {
			return progTime{}, fmt.Errorf("read eBPF program statistics: %w", err)
		}
		t.Runs += st.RunCount
		t.Time += st.Runtime
		t.ByProg[s.names[i]] += st.RunCount
		t.TimeByProg[s.names[i]] += st.Runtime
		switch s.types[i] {
		case ebpf.SkMsg:
			t.SkMsg.Runs += st.RunCount
			t.SkMsg.Time += st.Runtime
		case ebpf.SockOps:
			t.SockOps.Runs += st.RunCount
			t.SockOps.Time += st.Runtime
		}
	}
	return t, nil
}

func (s *progStats) close() {
	if s.stats != nil {
		s.stats.Close()
	}
	for _, p := range s.progs {
		p.Close()
	}
}
