package sampler

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a log destination safe to read while the watcher writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) lines() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Split(strings.TrimSpace(s.b.String()), "\n")
}

// replace writes a file the way deploy tools do: a new file renamed over
// the old, so a reader never sees half of it.
func replace(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func strategyFile(p string) string {
	return `{"service_strategies": [{"service": "api", "type": "probabilistic", "param": ` + p + `}]}`
}

// waitFor polls cond for up to 5 s, the reload delay golens promises.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 5 s: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestWatcherReloads(t *testing.T) {
	path := filepath.Join(t.TempDir(), "strategies.json")
	replace(t, path, strategyFile("0.5"))
	var logs syncBuffer
	s := New(Config{}, nil)
	w, err := NewWatcher(path, s, WatchConfig{Interval: 10 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	param := func() float64 { return s.Strategies().Service("api").Param }
	if param() != 0.5 {
		t.Fatalf("initial param %v, want 0.5", param())
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- w.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()

	replace(t, path, strategyFile("0.25"))
	waitFor(t, "param 0.25 applied", func() bool { return param() == 0.25 })
	if got := s.Stats().Reloads; got != 1 {
		t.Errorf("Reloads = %d, want 1", got)
	}

	// A broken file: counted once, logged once, previous strategies stay.
	replace(t, path, strategyFile("1.5"))
	waitFor(t, "broken file rejected", func() bool { return s.Stats().ReloadFailures == 1 })
	time.Sleep(50 * time.Millisecond) // a few more polls of the same file
	if got := s.Stats().ReloadFailures; got != 1 {
		t.Errorf("ReloadFailures = %d after more polls of the same file, want 1", got)
	}
	if param() != 0.25 {
		t.Errorf("param %v after a broken file, want the previous 0.25", param())
	}
	var warn []string
	for _, l := range logs.lines() {
		if strings.Contains(l, "level=WARN") {
			warn = append(warn, l)
		}
	}
	if len(warn) != 1 || !strings.Contains(warn[0], `param 1.5 is not a probability`) || !strings.Contains(warn[0], path) {
		t.Errorf("warnings logged: %q; want one line naming the file and the problem", warn)
	}

	replace(t, path, "{not json")
	waitFor(t, "invalid JSON rejected", func() bool { return s.Stats().ReloadFailures == 2 })

	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "missing file rejected", func() bool { return s.Stats().ReloadFailures == 3 })
	if param() != 0.25 {
		t.Errorf("param %v after the file went away, want the previous 0.25", param())
	}

	replace(t, path, strategyFile("0.75"))
	waitFor(t, "fixed file applied", func() bool { return param() == 0.75 })
}

func TestWatcherSameContentIsNoReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "strategies.json")
	replace(t, path, strategyFile("0.5"))
	s := New(Config{}, nil)
	w, err := NewWatcher(path, s, WatchConfig{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	future := time.Now().Add(time.Hour)
	if err := os.Chtimes(path, future, future); err != nil {
		t.Fatal(err)
	}
	for range 2 * rereadEvery {
		w.Poll()
	}
	if st := s.Stats(); st.Reloads != 0 || st.ReloadFailures != 0 {
		t.Errorf("touching the file: %+v, want no reload", st)
	}
	// Same size and mtime but new content is still noticed, by the
	// periodic re-read.
	replace(t, path, strategyFile("0.4"))
	if err := os.Chtimes(path, future, future); err != nil {
		t.Fatal(err)
	}
	for range rereadEvery {
		w.Poll()
	}
	if got := s.Strategies().Service("api").Param; got != 0.4 {
		t.Errorf("param %v, want 0.4 after a same-size, same-mtime edit", got)
	}
}

func TestNewWatcherRefusesBadFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "strategies.json")
	replace(t, path, `{"default_strategy": {"type": "probabilistic", "param": -1}}`)
	s := New(Config{}, nil)
	if _, err := NewWatcher(path, s, WatchConfig{}); !errors.Is(err, ErrInvalidStrategies) || !strings.Contains(err.Error(), path) {
		t.Errorf("NewWatcher(bad) error = %v, want ErrInvalidStrategies naming the file", err)
	}
	if _, err := NewWatcher(path+".missing", s, WatchConfig{}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("NewWatcher(missing) error = %v, want not-exist", err)
	}
	if got := s.Strategies().Default().Type; got != RateLimiting {
		t.Errorf("strategies changed by a refused file: default %s", got)
	}
}

// A file grown past MaxFileBytes is refused once, not re-read poll after
// poll, and the previous strategies stay.
func TestWatcherRefusesLargeFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "strategies.json")
	replace(t, path, strategyFile("0.5"))
	var logs syncBuffer
	s := New(Config{}, nil)
	w, err := NewWatcher(path, s, WatchConfig{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	replace(t, path, strategyFile("0.25")+strings.Repeat(" ", MaxFileBytes))
	for range 3 {
		w.Poll()
	}
	if got := s.Strategies().Service("api").Param; got != 0.5 {
		t.Errorf("param %v after a too large file, want the previous 0.5", got)
	}
	if got := s.Stats().ReloadFailures; got != 1 {
		t.Errorf("ReloadFailures = %d, want 1", got)
	}
	if l := logs.lines(); len(l) != 1 || !strings.Contains(l[0], "larger than 4 MiB") {
		t.Errorf("log %q, want one line saying the file is too large", l)
	}
}
