package discovery

import (
	"bytes"
	"debug/buildinfo"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/golens/golens/probes/event"
)

// ID names one process for its whole life: a pid is reused, a pid with its
// start time is not.
type ID struct {
	PID   int
	Start uint64 // start time in clock ticks after boot (/proc/PID/stat field 22)
}

// String names the process for logs: "1234 (started at tick 5678)".
func (id ID) String() string { return fmt.Sprintf("%d (started at tick %d)", id.PID, id.Start) }

// StartTime reads when process pid started.
func StartTime(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStartTime(b)
}

// parseStartTime reads field 22 of /proc/PID/stat. The command name (field
// 2) may hold spaces and parentheses, so fields are counted after its last
// closing parenthesis.
func parseStartTime(stat []byte) (uint64, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("malformed stat line")
	}
	f := strings.Fields(string(stat[i+1:]))
	// f[0] is field 3 (state), so field 22 is f[19].
	if len(f) < 20 {
		return 0, fmt.Errorf("stat line has %d fields after the command", len(f)+2)
	}
	return strconv.ParseUint(f[19], 10, 64)
}

// Exe returns the executable path of pid as /proc/PID/exe resolves it (in
// the process's own mount namespace), without the " (deleted)" the kernel
// appends when the file was replaced since.
func Exe(pid int) (string, error) {
	p, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(p, " (deleted)"), nil
}

// fileKey is one version of one file: replicas of a binary share it.
type fileKey struct {
	dev, ino uint64
	mtime    syscall.Timespec
}

// goCache remembers which executables are Go programs, so that many
// processes of one binary cost one read of it.
type goCache struct {
	m map[fileKey]string // Go version; "" for not Go
}

// maxGoCache bounds the cache; past it, it starts over.
const maxGoCache = 4096

// goVersion tells whether the executable of pid is a Go program, which
// Go built it, and whether the file was read (not found in the cache). The file is read through /proc/PID/exe, which works for
// processes in other mount namespaces and for deleted files.
func (c *goCache) goVersion(pid int) (version string, isGo, read bool) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		return "", false, false
	}
	defer f.Close()
	var key fileKey
	if fi, err := f.Stat(); err == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			key = fileKey{st.Dev, st.Ino, st.Mtim}
		}
	}
	if key.ino != 0 {
		if v, ok := c.m[key]; ok {
			return v, v != "", false
		}
	}
	v := readGoVersion(f)
	if key.ino != 0 {
		if c.m == nil || len(c.m) >= maxGoCache {
			c.m = make(map[fileKey]string)
		}
		c.m[key] = v
	}
	return v, v != "", true
}

// readGoVersion is the Go version in an executable's build info, "" when
// it has none. The file is anyone's: debug/buildinfo is not hardened
// against crafted input, so a panic in it means "not a Go program we can
// read", never the agent's end.
func readGoVersion(f *os.File) (v string) {
	defer func() {
		if recover() != nil {
			v = ""
		}
	}()
	bi, err := buildinfo.Read(f)
	if err != nil {
		return ""
	}
	return event.ValidUTF8(bi.GoVersion)
}
