package main

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// logRecord is one line of golens' log (slog's text format) as its
// key=value fields.
type logRecord map[string]string

// parseLogLine reads one line of slog's text format: key=value pairs
// separated by spaces, where a value holding spaces, quotes or '=' is
// quoted as a Go string.
func parseLogLine(line string) (logRecord, error) {
	r := logRecord{}
	s := line
	for {
		s = strings.TrimLeft(s, " ")
		if s == "" {
			return r, nil
		}
		k, rest, ok := strings.Cut(s, "=")
		if !ok || k == "" || strings.ContainsAny(k, ` "`) {
			return nil, fmt.Errorf("log line %q: no key=value at %q", line, s)
		}
		if strings.HasPrefix(rest, `"`) {
			q, err := strconv.QuotedPrefix(rest)
			if err != nil {
				return nil, fmt.Errorf("log line %q: value of %s: %w", line, k, err)
			}
			r[k], _ = strconv.Unquote(q)
			s = rest[len(q):]
			continue
		}
		r[k], s, _ = strings.Cut(rest, " ")
	}
}

// findLog returns the first record of log about pid whose message is one of
// msgs.
func findLog(log string, pid int, msgs ...string) (logRecord, bool) {
	p := strconv.Itoa(pid)
	for _, line := range strings.Split(log, "\n") {
		// Cheap filter first: this runs every few milliseconds.
		if !strings.Contains(line, "pid="+p) {
			continue
		}
		r, err := parseLogLine(line)
		if err != nil || r["pid"] != p || !slices.Contains(msgs, r["msg"]) {
			continue
		}
		return r, true
	}
	return nil, false
}

// Time is when the record was logged (millisecond resolution).
func (r logRecord) Time() (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, r["time"])
	if err != nil {
		return time.Time{}, fmt.Errorf("log time: %w", err)
	}
	return t, nil
}

// Duration reads key as a duration; ok false when it is absent or not one.
func (r logRecord) Duration(key string) (time.Duration, bool) {
	d, err := time.ParseDuration(r[key])
	return d, err == nil
}

// What golens logs when discovery attaches a process and when it releases
// one: the discoverer says "detached"; when the manager's own exit watcher
// was first, it is the only one to say anything.
var (
	attachedMsgs = []string{"attached"}
	releasedMsgs = []string{"detached", "target exited, probes released"}
)
