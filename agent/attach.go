package agent

import (
	"context"
	"log/slog"
	"time"

	"github.com/golens/golens/discovery"
)

// selection is why a process is attached: named by --pid (zero found), or
// found by a discovery rule, in a pod when pod is set.
type selection struct {
	found discovery.Found
	pod   *discovery.PodContainer
}

// discovered tells whether a rule, not --pid, selected the process.
func (s selection) discovered() bool { return s.found.PID != 0 }

// exited tells whether a discovered process is gone (or another program
// now): its pid no longer has the start time it was found with. A --pid
// target is never taken for gone: its failures are errors.
func (s selection) exited() bool {
	if !s.discovered() {
		return false
	}
	st, err := discovery.StartTime(s.found.PID)
	return err != nil || st != s.found.Start
}

// attach instruments one process, the one way every target is attached,
// and says so in one log line either way: an error for a process that
// cannot be instrumented, a debug line for a discovered one that exited
// before it was.
func (a *Agent) attach(ctx context.Context, pid int, sel selection) bool {
	start := time.Now()
	proc, err := discovery.Describe(pid, a.cfg.ServiceName)
	if err != nil {
		if sel.exited() {
			a.log.Debug("exited before attached", "pid", pid, "reason", err)
		} else {
			a.log.Error("cannot instrument", "pid", pid, "reason", err)
		}
		return false
	}
	if sel.discovered() {
		proc.GoVersion = sel.found.GoVersion
	}
	if sel.pod != nil {
		a.disc.describePod(ctx, pid, proc, *sel.pod)
	}
	res, err := a.mgr.Attach(pid, proc)
	if err != nil {
		if sel.exited() {
			// It exited while being attached: a short-lived command.
			a.log.Debug("exited before attached", "pid", pid, "exe", proc.ExeName)
			return false
		}
		args := []any{"pid", pid, "exe", proc.ExeName}
		if sel.discovered() {
			args = append(args, "selected_by", sel.found.Rule)
		}
		a.log.Error("cannot instrument", append(args, "reason", err)...)
		return false
	}
	for name, why := range res.Refused {
		a.log.Warn("probe refused", "pid", pid, "probe", name, "reason", why)
	}
	// Said at info for a target the operator named, at debug for the
	// many discovery may find.
	level := slog.LevelInfo
	if sel.discovered() {
		level = slog.LevelDebug
	}
	for _, why := range res.Skipped {
		a.log.Log(ctx, level, "optional hook not attached", "pid", pid, "hook", why)
	}
	args := []any{"pid", pid, "exe", proc.ExePath, "service", proc.ServiceName, "go", proc.GoVersion}
	if sel.discovered() {
		args = append(args, "selected_by", sel.found.Rule)
	}
	args = append(args, "probes", res.Probes, "uprobes", res.Uprobes, "took", time.Since(start).Round(time.Millisecond))
	if !sel.found.Exec.IsZero() {
		args = append(args, "since_exec", time.Since(sel.found.Exec).Round(time.Millisecond))
	}
	if p := sel.pod; p != nil {
		args = append(args, "namespace", p.Pod.Namespace, "pod", p.Pod.Name, "container", p.Container)
	}
	a.log.Info("attached", args...)
	return true
}
