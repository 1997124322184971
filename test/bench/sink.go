package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/golens/golens/test/harness"
)

// receiver is where a round's spans go: harness.Receiver in the bench's
// process (keeping every span, for the checks of their contents), or
// otlpSink in a process of its own (counting only).
type receiver interface {
	Addr() string
	Count() int
	WaitCount(n int, timeout time.Duration) (int, error)
	Close()
}

// otlpSink is test/apps/otlpsink, running.
type otlpSink struct {
	app   *harness.App
	dir   string
	count string // the file it writes its span count to
}

func startSink(bin string) (*otlpSink, error) {
	dir, err := os.MkdirTemp("", "golens-sink-")
	if err != nil {
		return nil, err
	}
	count := filepath.Join(dir, "count")
	app, err := harness.StartApp(bin, nil, "-count-file", count)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return &otlpSink{app: app, dir: dir, count: count}, nil
}

func (s *otlpSink) Addr() string { return s.app.Addr }

func (s *otlpSink) Count() int {
	b, err := os.ReadFile(s.count)
	if err != nil {
		return 0 // nothing received yet
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return n
}

// WaitCount waits until at least n spans arrived, or timeout.
func (s *otlpSink) WaitCount(n int, timeout time.Duration) (int, error) {
	deadline := time.Now().Add(timeout)
	for {
		got := s.Count()
		if got >= n {
			return got, nil
		}
		if time.Now().After(deadline) {
			return got, fmt.Errorf("received %d spans, want %d", got, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (s *otlpSink) Close() {
	s.app.Stop()
	os.RemoveAll(s.dir)
}
