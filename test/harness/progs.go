package harness

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// ProgramIDs lists the eBPF programs process pid holds open, from the
// prog_id lines of its /proc/PID/fdinfo.
func ProgramIDs(pid int) ([]ebpf.ProgramID, error) {
	files, err := filepath.Glob(fmt.Sprintf("/proc/%d/fdinfo/*", pid))
	if err != nil {
		return nil, err
	}
	seen := map[ebpf.ProgramID]bool{}
	var ids []ebpf.ProgramID
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // the descriptor was closed meanwhile
		}
		id, ok := FdinfoProgID(string(b))
		if ok && !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	return ids, nil
}

// FdinfoProgID finds "prog_id:" in the text of one /proc/PID/fdinfo file.
func FdinfoProgID(text string) (ebpf.ProgramID, bool) {
	for _, line := range strings.Split(text, "\n") {
		v, ok := strings.CutPrefix(line, "prog_id:")
		if !ok {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32)
		if err != nil {
			return 0, false
		}
		return ebpf.ProgramID(n), true
	}
	return 0, false
}

// RunStats turns on the kernel's eBPF run statistics until Close; while on,
// every program run is counted (RunCounts reads them).
func RunStats() (io.Closer, error) {
	c, err := ebpf.EnableStats(unix.BPF_STATS_RUN_TIME)
	if err != nil {
		return nil, fmt.Errorf("enable BPF run statistics: %w", err)
	}
	return c, nil
}

// RunCounts sums the kernel's run counts of the programs process pid holds,
// by program name as the kernel keeps it (its first 15 characters).
func RunCounts(pid int) (map[string]uint64, error) {
	ids, err := ProgramIDs(pid)
	if err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("process %d holds no eBPF programs", pid)
	}
	counts := map[string]uint64{}
	for _, id := range ids {
		p, err := ebpf.NewProgramFromID(id)
		if err != nil {
			continue // released meanwhile
		}
		name := fmt.Sprintf("prog-%d", id)
		if info, err := p.Info(); err == nil && info.Name != "" {
			name = info.Name
		}
		st, err := p.Stats()
		p.Close()
		if err != nil {
			return nil, fmt.Errorf("read eBPF program %d statistics: %w", id, err)
		}
		counts[name] += st.RunCount
	}
	return counts, nil
}
