package probes

import "github.com/golens/golens/probes/inspect"

// ResolveConstants exposes resolveConstants to the external tests.
var ResolveConstants = resolveConstants

// SetAfterInspect makes m call f between inspecting a target's binary and
// attaching its probes.
func SetAfterInspect(m *Manager, f func(pid int)) { m.afterInspect = f }

// TargetMapIDs returns the kernel ids of the maps named name in the objects
// loaded for pid (one per loaded object that has such a map).
func TargetMapIDs(m *Manager, pid int, name string) []uint32 {
	m.mu.Lock()
	t := m.targets[pid]
	m.mu.Unlock()
	if t == nil {
		return nil
	}
	var ids []uint32
	for _, l := range t.held {
		if mp := l.coll.Maps[name]; mp != nil {
			if info, err := mp.Info(); err == nil {
				if id, ok := info.ID(); ok {
					ids = append(ids, uint32(id))
				}
			}
		}
	}
	return ids
}

// TargetProgIDs returns the kernel ids of the programs named name in the
// objects pid's links run.
func TargetProgIDs(m *Manager, pid int, name string) []uint32 {
	m.mu.Lock()
	t := m.targets[pid]
	m.mu.Unlock()
	if t == nil {
		return nil
	}
	var ids []uint32
	for _, l := range t.held {
		if p := l.coll.Programs[name]; p != nil {
			if info, err := p.Info(); err == nil {
				if id, ok := info.ID(); ok {
					ids = append(ids, uint32(id))
				}
			}
		}
	}
	return ids
}

// Loads returns the objects in the kernel and those loaded since start.
func Loads(m *Manager) (live, loads int) { return m.objs.count() }

// PlannedPoint is one attach point planSpec chose.
type PlannedPoint struct {
	Prog      string
	Addr, Off uint64
}

// Plan exposes planSpec for a binary that is not running (load bias 0).
func Plan(s Spec, bin *inspect.Binary, features map[string]bool) (map[string]any, []PlannedPoint, []string, error) {
	consts, pts, skipped, err := planSpec(s, bin, &image{}, features)
	var out []PlannedPoint
	for _, p := range pts {
		out = append(out, PlannedPoint{p.prog, p.addr, p.off})
	}
	return consts, out, skipped, err
}
