package probes

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
	for _, c := range t.colls {
		if mp := c.Maps[name]; mp != nil {
			if info, err := mp.Info(); err == nil {
				if id, ok := info.ID(); ok {
					ids = append(ids, uint32(id))
				}
			}
		}
	}
	return ids
}
