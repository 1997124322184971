package probes

import "github.com/cilium/ebpf"

// ResolveConstants exposes resolveConstants to the external tests.
var ResolveConstants = resolveConstants

// SetAfterInspect makes m call f between inspecting a target's binary and
// attaching its probes.
func SetAfterInspect(m *Manager, f func(pid int)) { m.afterInspect = f }

// Served returns the pids m's socket programs serve, by feature.
func Served(m *Manager) map[string][]int {
	m.mu.Lock()
	defer m.mu.Unlock()
	served := make(map[string][]int)
	for _, s := range m.sockets {
		var pid uint32
		var v uint8
		it := s.pids.Iterate()
		for it.Next(&pid, &v) {
			served[s.decl.Feature] = append(served[s.decl.Feature], int(pid))
		}
	}
	return served
}

// SockOpsIDs returns the ids of m's attached sock_ops programs.
func SockOpsIDs(m *Manager) []ebpf.ProgramID {
	m.mu.Lock()
	defer m.mu.Unlock()
	var ids []ebpf.ProgramID
	for _, s := range m.sockets {
		if info, err := s.coll.Programs[s.decl.SockOps].Info(); err == nil {
			if id, ok := info.ID(); ok {
				ids = append(ids, id)
			}
		}
	}
	return ids
}

// Cgroup2Root exposes cgroup2Root to the external tests.
var Cgroup2Root = cgroup2Root
