package main

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// idleProcs are idle non-Go processes (coreutils sleep) in one process
// group of their own, so that one kill ends them all. They are not in the
// bench's group, so a Ctrl-C at the terminal does not reach them: the
// bench kills them itself on SIGINT, SIGTERM and SIGHUP, and each sleeps
// only a bounded time in case the bench is killed outright.
type idleProcs struct {
	cmds     []*exec.Cmd
	pgid     atomic.Int64
	signals  chan os.Signal
	done     chan struct{}
	stopOnce sync.Once
}

// startIdle starts n processes that each sleep for life. On error, what it
// started is stopped already.
func startIdle(n int, life time.Duration) (*idleProcs, error) {
	bin, err := exec.LookPath("sleep")
	if err != nil {
		return nil, fmt.Errorf("idle processes: %w", err)
	}
	p := &idleProcs{signals: make(chan os.Signal, 1), done: make(chan struct{})}
	signal.Notify(p.signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	go p.killOnSignal()
	secs := strconv.Itoa(int(life.Seconds()) + 1)
	for i := 0; i < n; i++ {
		cmd := exec.Command(bin, secs)
		// The first one leads the group; the others join it.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pgid: int(p.pgid.Load())}
		if err := cmd.Start(); err != nil {
			p.stop()
			return nil, fmt.Errorf("start idle process %d of %d: %w", i+1, n, err)
		}
		if i == 0 {
			p.pgid.Store(int64(cmd.Process.Pid))
		}
		p.cmds = append(p.cmds, cmd)
	}
	return p, nil
}

// killOnSignal kills the group when the bench is told to stop, then lets
// the signal do what it would have done.
func (p *idleProcs) killOnSignal() {
	select {
	case s := <-p.signals:
		p.kill()
		signal.Reset(s)
		syscall.Kill(os.Getpid(), s.(syscall.Signal))
	case <-p.done:
	}
}

func (p *idleProcs) kill() {
	if g := int(p.pgid.Load()); g > 0 {
		syscall.Kill(-g, syscall.SIGKILL)
	}
}

// stop kills the group and reaps every process, so that none is left in
// /proc, not even as a zombie.
func (p *idleProcs) stop() {
	p.stopOnce.Do(func() {
		signal.Stop(p.signals)
		close(p.done)
		p.kill()
		for _, c := range p.cmds {
			c.Wait()
		}
	})
}

// alive counts the processes still running: any that ended early stays a
// zombie until stop reaps it.
func (p *idleProcs) alive() int {
	n := 0
	for _, c := range p.cmds {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", c.Process.Pid))
		if err != nil {
			continue
		}
		if st, err := parseStatState(string(b)); err == nil && st != 'Z' && st != 'X' {
			n++
		}
	}
	return n
}

// procCount is how many processes /proc lists.
func procCount() int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	n := 0
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err == nil {
			n++
		}
	}
	return n
}
