package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// cpuYield runs golens' threads under SCHED_IDLE while golens keeps up
// (--cpu-yield): a target thread waking on a CPU where golens runs then
// preempts it at once, instead of waiting out golens' slice, which is
// what made the chained tail (docs/architecture.md, "The chained tail").
// Once the ring buffer passes yieldFill or golens' own ticker runs
// yieldLate behind (the node's CPUs are busy and golens starves), its
// threads go back to the normal policy for at least yieldHold, and yield
// again only once neither holds. The limit: every thread is idle-class,
// the ticker's too, so where every CPU is busy golens may get no CPU for
// a second or more before it can notice (TestCPUYield waits for it);
// events past the ring buffer's capacity are then lost, and counted.
type cpuYield struct {
	log  *slog.Logger
	fill func() float64 // the ring buffer's fill, 0 to 1

	yielding atomic.Bool
	toIdle   atomic.Uint64
	toNormal atomic.Uint64
}

const (
	yieldTick = 50 * time.Millisecond
	// yieldLate behind its schedule, the ticker says golens starves.
	yieldLate = 25 * time.Millisecond
	// yieldFill of the ring buffer unread calls for the CPU: far below
	// where events are lost, and reached within ~0.1 s of starving at the
	// ceiling's rate.
	yieldFill = 0.25
	// yieldHold is the least time at normal priority once behind.
	yieldHold = 2 * time.Second
	// yieldReassert re-applies the policy to every thread this often: a
	// thread inherits its creator's, this catches any that did not.
	yieldReassert = time.Second
)

// schedPolicy sets policy on every thread of golens.
func schedPolicy(policy uint32) error {
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return err
	}
	var first error
	for _, e := range ents {
		tid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if err := unix.SchedSetAttr(tid, &unix.SchedAttr{Policy: policy}, 0); err != nil && !errors.Is(err, unix.ESRCH) && first == nil {
			first = fmt.Errorf("thread %d: %w", tid, err)
		}
	}
	return first
}

// canYield tells whether golens may leave SCHED_IDLE again once in it:
// without CAP_SYS_NICE (or an RLIMIT_NICE allowing nice 0) the kernel
// refuses the way back, and a starving golens could not claim the CPU. It
// tries on a thread of its own, locked to this goroutine.
func canYield() error {
	done := make(chan error, 1)
	go func() {
		// Not unlocked: the thread's policy was changed; it exits with
		// the goroutine.
		runtime.LockOSThread()
		tid := unix.Gettid()
		if err := unix.SchedSetAttr(tid, &unix.SchedAttr{Policy: unix.SCHED_IDLE}, 0); err != nil {
			done <- fmt.Errorf("set SCHED_IDLE: %w", err)
			return
		}
		if err := unix.SchedSetAttr(tid, &unix.SchedAttr{Policy: unix.SCHED_NORMAL}, 0); err != nil {
			done <- fmt.Errorf("back to SCHED_OTHER (needs CAP_SYS_NICE): %w", err)
			return
		}
		done <- nil
	}()
	return <-done
}

// run yields until ctx ends, then leaves golens at the normal policy.
func (y *cpuYield) run(ctx context.Context) error {
	if err := canYield(); err != nil {
		y.log.Warn("--cpu-yield is off: golens could not return from SCHED_IDLE to normal priority, so it stays at normal priority", "err", err)
		return nil
	}
	defer func() {
		if y.yielding.Load() {
			_ = schedPolicy(unix.SCHED_NORMAL)
			y.yielding.Store(false)
		}
	}()
	tick := time.NewTicker(yieldTick)
	defer tick.Stop()
	var normalUntil, reasserted time.Time
	last := time.Now()
	y.set(true, "start", 0, 0)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		now := time.Now()
		late := now.Sub(last) - yieldTick
		last = now
		fill := y.fill()
		behind := late > yieldLate || fill > yieldFill
		switch {
		case behind:
			normalUntil = now.Add(yieldHold)
			if y.yielding.Load() {
				y.set(false, "behind", late, fill)
			}
		case !y.yielding.Load() && now.After(normalUntil):
			y.set(true, "caught up", late, fill)
		case now.Sub(reasserted) > yieldReassert:
			reasserted = now
			policy, _ := policyFor(y.yielding.Load())
			_ = schedPolicy(policy)
		}
	}
}

// policyFor is the scheduling policy of golens' threads when yielding
// (idle) or not, and its name in the metrics.
func policyFor(idle bool) (uint32, string) {
	if idle {
		return unix.SCHED_IDLE, "idle"
	}
	return unix.SCHED_NORMAL, "normal"
}

// set switches every thread to SCHED_IDLE (idle) or back, logging why.
func (y *cpuYield) set(idle bool, why string, late time.Duration, fill float64) {
	policy, name := policyFor(idle)
	if err := schedPolicy(policy); err != nil {
		y.log.Warn("cpu yield: could not set every thread's policy", "policy", name, "err", err)
	}
	y.yielding.Store(idle)
	if idle {
		y.toIdle.Add(1)
	} else {
		y.toNormal.Add(1)
	}
	// Debug: a busy node switches often; the counters say how often.
	y.log.Debug("cpu yield", "policy", name, "why", why, "ticker_late", late, "ring_fill", fill)
}
