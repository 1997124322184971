package probes

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
)

// SocketPrograms declares programs a probe family runs on sockets rather
// than in targets (a cgroup sock_ops program and an sk_msg program on its
// sockhash, say): one instance serves every target, so the manager starts
// them once, when it was asked for Feature, with the maps it shares with
// every target's uprobe objects, and tells them which pids to serve: a
// target's, while it is attached.
type SocketPrograms struct {
	Feature string // started only when the manager was asked for it
	// Start loads and attaches the programs; shared holds the maps of
	// Spec.Shared (and the ring buffer and stats), by name.
	Start func(shared map[string]*ebpf.Map) (Sockets, error)
}

// Sockets are socket programs started for the agent.
type Sockets interface {
	// Add serves the connections pid opens from now on.
	Add(pid int) error
	// Remove stops serving pid.
	Remove(pid int)
	// Stats returns the programs' counters by name.
	Stats() map[string]uint64
	// Close detaches and unloads the programs.
	Close() error
}

// FeatureError says the socket programs of a feature could not be
// started: the manager goes on without the feature.
type FeatureError struct {
	Feature string
	Err     error
}

func (e *FeatureError) Error() string { return fmt.Sprintf("feature %s off: %v", e.Feature, e.Err) }

func (e *FeatureError) Unwrap() error { return e.Err }

// startSockets starts the socket programs of the features asked for. One
// that cannot be started turns its feature off, before any target is
// attached, so that no uprobe announces what nothing would consume.
// m.mu is held.
func (m *Manager) startSockets() {
	var errs []error
	for _, s := range m.specs {
		sp := s.Sockets
		if sp == nil || !m.features[sp.Feature] {
			continue
		}
		socks, err := sp.Start(m.shared)
		if err != nil {
			delete(m.features, sp.Feature)
			m.log.Warn("feature off: its socket programs cannot be started", "feature", sp.Feature, "probe", s.Name, "err", err)
			errs = append(errs, &FeatureError{Feature: sp.Feature, Err: fmt.Errorf("%s: %w", s.Name, err)})
			continue
		}
		m.sockets = append(m.sockets, socks)
	}
	m.featErr = errors.Join(errs...)
}

// Open loads the maps every target shares and starts the socket programs
// of the features asked for; the first Attach does it when Open was not
// called. A feature whose socket programs cannot be started is turned off
// and reported as a *FeatureError (errors.As): the manager works without
// it, and the caller decides whether that is fatal.
func (m *Manager) Open() error {
	if err := m.ensureShared(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.featErr
}

// Feature reports whether the manager runs with feature f: asked for,
// and its socket programs, if any, started.
func (m *Manager) Feature(f string) bool {
	if err := m.ensureShared(); err != nil {
		return false
	}
	return m.features[f]
}

// serveLocked makes the socket programs serve pid. m.mu is held.
func (m *Manager) serveLocked(pid int) error {
	var errs []error
	for _, s := range m.sockets {
		if err := s.Add(pid); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// unserve stops the socket programs serving pid.
func (m *Manager) unserve(pid int) {
	m.mu.Lock()
	socks := m.sockets
	m.mu.Unlock()
	for _, s := range socks {
		s.Remove(pid)
	}
}

// closeSockets stops the socket programs. m.mu is held.
func (m *Manager) closeSockets() error {
	var errs []error
	for _, s := range m.sockets {
		errs = append(errs, s.Close())
	}
	m.sockets = nil
	return errors.Join(errs...)
}
