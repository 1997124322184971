// Package discovery finds the processes to instrument and describes them.
package discovery

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/golens/golens/probes/event"
)

// Describe reads what golens needs to know about a running process. The
// service name is override when set, else the process's own
// OTEL_SERVICE_NAME, else its executable's name.
func Describe(pid int, override string) (*event.Process, error) {
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		if os.IsNotExist(err) {
			return nil, fmt.Errorf("pid %d: no such process", pid)
		}
		return nil, fmt.Errorf("pid %d: read executable link: %w", pid, err)
	}
	// A path is any bytes but '/' and NUL; golens' consumers need text.
	exe = event.ValidUTF8(strings.TrimSuffix(exe, " (deleted)"))
	p := &event.Process{
		PID:     pid,
		ExePath: exe,
		ExeName: filepath.Base(exe),
	}
	switch {
	case override != "":
		p.ServiceName = override
	default:
		if v, ok := Environ(pid)["OTEL_SERVICE_NAME"]; ok && v != "" {
			p.ServiceName = v
		} else {
			p.ServiceName = p.ExeName
		}
	}
	return p, nil
}

// Environ returns the initial environment of a process (what it was started
// with); empty when unreadable.
func Environ(pid int) map[string]string {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	env := make(map[string]string)
	if err != nil {
		return env
	}
	for _, kv := range bytes.Split(raw, []byte{0}) {
		k, v, ok := strings.Cut(string(kv), "=")
		if ok {
			env[k] = event.ValidUTF8(v) // the target's bytes, e.g. OTEL_SERVICE_NAME
		}
	}
	return env
}
