package tracer

import (
	"context"
	"sync"

	"github.com/golens/golens/span"
)

// memExporter keeps every span exported to it.
type memExporter struct {
	mu    sync.Mutex
	spans []*span.Span
}

func newMemExporter() *memExporter { return &memExporter{} }

func (m *memExporter) ExportSpans(_ context.Context, spans []*span.Span) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.spans = append(m.spans, spans...)
	return nil
}

func (*memExporter) Shutdown(context.Context) error { return nil }

// GetSpans returns a copy of what was exported so far.
func (m *memExporter) GetSpans() []*span.Span {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]*span.Span(nil), m.spans...)
}

// Reset forgets what was exported.
func (m *memExporter) Reset() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.spans = nil
}
