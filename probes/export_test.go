package probes

// ResolveConstants exposes resolveConstants to the external tests.
var ResolveConstants = resolveConstants

// SetAfterInspect makes m call f between inspecting a target's binary and
// attaching its probes.
func SetAfterInspect(m *Manager, f func(pid int)) { m.afterInspect = f }
