package probes

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/golens/golens/probes/event"
)

// A handler bug that every event hits costs each event, counted, and one
// logged stack per interval, not one per event.
func TestHandlerPanicLogBounded(t *testing.T) {
	var log bytes.Buffer
	m := NewManager(nil, nil, func(event.Event) { panic("bug") }, slog.New(slog.NewTextHandler(&log, nil)))
	for range 1000 {
		m.handle(&event.HTTPServer{})
	}
	if got := m.decodeErrors.Load(); got != 1000 {
		t.Errorf("%d events counted as dropped, want 1000", got)
	}
	if n := strings.Count(log.String(), "event handler panicked"); n != 1 {
		t.Errorf("%d panic lines for 1000 events, want 1:\n%.2000s", n, log.String())
	}
}
