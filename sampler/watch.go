package sampler

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"os"
	"time"
)

// DefaultPollInterval is how often a Watcher looks at its file. A change is
// applied within one interval (well inside the 5 s golens promises).
const DefaultPollInterval = time.Second

// rereadEvery makes a Watcher read the file every so many polls even when
// its size and modification time look unchanged, for file systems and
// editors that keep both.
const rereadEvery = 10

// WatchConfig tunes a Watcher; zero values take the defaults.
type WatchConfig struct {
	// Interval is how often the file is polled (DefaultPollInterval).
	Interval time.Duration
	// Logger receives one line per reload or rejected file; nil is
	// slog.Default().
	Logger *slog.Logger
}

// Watcher keeps a Sampler's strategies in step with a strategies file: a
// changed file is parsed and swapped in at once; a file that fails to parse
// or read leaves the previous strategies in force, is logged once per
// distinct content and counted in the Sampler's Stats.
type Watcher struct {
	path    string
	target  *Sampler
	cfg     WatchConfig
	applied fingerprint // of the content in force
	failed  fingerprint // of the last content rejected, so it is logged once
	polls   int
}

// fingerprint identifies a version of the file.
type fingerprint struct {
	size    int64
	modTime time.Time
	sum     [sha256.Size]byte
	err     string // for a file that could not be read
}

// NewWatcher loads the file at path into s and returns a Watcher for it.
// The error is the file's, for the caller to refuse to start with.
func NewWatcher(path string, s *Sampler, cfg WatchConfig) (*Watcher, error) {
	setDefault(&cfg.Interval, DefaultPollInterval)
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	w := &Watcher{path: path, target: s, cfg: cfg}
	fp, b, err := w.read()
	if err != nil {
		return nil, err
	}
	st, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	s.SetStrategies(st)
	w.applied = fp
	return w, nil
}

// Run polls the file until ctx is done.
func (w *Watcher) Run(ctx context.Context) error {
	t := time.NewTicker(w.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			w.Poll()
		}
	}
}

// Poll looks at the file once and applies it if it changed. Run calls it;
// it must not run concurrently with itself.
func (w *Watcher) Poll() {
	w.polls++
	info, err := os.Stat(w.path)
	if err != nil {
		w.reject(fingerprint{err: err.Error()}, err)
		return
	}
	if w.polls%rereadEvery != 0 && info.Size() == w.applied.size && info.ModTime().Equal(w.applied.modTime) {
		return
	}
	if info.Size() > MaxFileBytes {
		// Not read at all, poll after poll, while it stays too large.
		err := tooLarge()
		w.reject(fingerprint{err: err.Error()}, fmt.Errorf("%s: %w", w.path, err))
		return
	}
	fp, b, err := w.read()
	if err != nil {
		w.reject(fingerprint{err: err.Error()}, err)
		return
	}
	if fp.sum == w.applied.sum {
		w.applied = fp // touched, not changed
		w.failed = fingerprint{}
		return
	}
	if fp.sum == w.failed.sum && w.failed.err == "" {
		return // already rejected
	}
	st, err := Parse(b)
	if err != nil {
		w.reject(fp, err)
		return
	}
	w.target.SetStrategies(st)
	w.target.reloads.Add(1)
	w.applied, w.failed = fp, fingerprint{}
	w.cfg.Logger.Info("sampling strategies reloaded", "path", w.path, "services", len(st.services))
}

func (w *Watcher) read() (fingerprint, []byte, error) {
	f, err := os.Open(w.path)
	if err != nil {
		return fingerprint{}, nil, fmt.Errorf("read sampling strategies: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return fingerprint{}, nil, fmt.Errorf("read sampling strategies: %w", err)
	}
	b, err := readBounded(f)
	if err != nil {
		return fingerprint{size: info.Size(), modTime: info.ModTime(), err: err.Error()}, nil, err
	}
	return fingerprint{size: info.Size(), modTime: info.ModTime(), sum: sha256.Sum256(b)}, b, nil
}

// reject logs and counts a file version that cannot be applied, once.
func (w *Watcher) reject(fp fingerprint, err error) {
	if fp == w.failed {
		return
	}
	w.failed = fp
	w.target.reloadFailures.Add(1)
	w.cfg.Logger.Warn("sampling strategies not reloaded, keeping the previous ones", "path", w.path, "err", err)
}
