package main

import (
	"debug/elf"
	"errors"
	"fmt"
	"log/slog"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"
)

// hitSymbol is the function of test/apps/hitloop that the calibration probes.
const hitSymbol = "main.work"

// hitCost is what the calibration measured.
type hitCost struct {
	Calls       int
	Without     float64 // CPU ns per call, median of the runs without the probe
	With        float64 // CPU ns per call, median of the runs with the empty probe
	RunsWithout []float64
	RunsWith    []float64
	WallWithout float64 // wall ns per call, median; for comparison only
	WallWith    float64
	Verified    uint64 // program runs counted by the kernel in the check run
	VerifyCalls int
}

// PerHit is the cost of one uprobe hit: CPU time of the thread that hit it.
// Wall time would also count whatever else the machine runs meanwhile.
func (h hitCost) PerHit() time.Duration {
	return time.Duration((h.With - h.Without) * float64(time.Nanosecond))
}

// calibrate measures the cost of one uprobe hit: hitloop calls main.work
// calls times; an empty eBPF program attached there makes each call a probe
// hit, so the difference per call between runs with and without it is what
// a hit costs the target. Runs alternate so that drift touches both sides.
func calibrate(hitloop string, calls, runs int) (hitCost, error) {
	if err := hasSymbol(hitloop, hitSymbol); err != nil {
		return hitCost{}, err
	}
	// Memory for BPF objects is charged to the memory cgroup on this kernel;
	// the rlimit cannot be raised here and need not be.
	_ = rlimit.RemoveMemlock()
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:    "empty",
		Type:    ebpf.Kprobe,
		License: "GPL",
		Instructions: asm.Instructions{
			asm.Mov.Imm(asm.R0, 0),
			asm.Return(),
		},
	})
	if err != nil {
		return hitCost{}, fmt.Errorf("load empty uprobe program: %w", err)
	}
	defer prog.Close()
	exe, err := link.OpenExecutable(hitloop)
	if err != nil {
		return hitCost{}, fmt.Errorf("open %s: %w", hitloop, err)
	}

	h := hitCost{Calls: calls}
	var wallWithout, wallWith []float64
	for i := 0; i < runs; i++ {
		wall, cpu, err := runHitloop(hitloop, calls)
		if err != nil {
			return hitCost{}, err
		}
		h.RunsWithout = append(h.RunsWithout, cpu)
		wallWithout = append(wallWithout, wall)

		// No PID filter: the probe applies to every process mapping the
		// binary, including the one started next.
		up, err := exe.Uprobe(hitSymbol, prog, nil)
		if err != nil {
			return hitCost{}, fmt.Errorf("attach uprobe to %s in %s: %w", hitSymbol, hitloop, err)
		}
		wall, cpu, err = runHitloop(hitloop, calls)
		up.Close()
		if err != nil {
			return hitCost{}, err
		}
		h.RunsWith = append(h.RunsWith, cpu)
		wallWith = append(wallWith, wall)
		slog.Info("calibration", "run", fmt.Sprintf("%d/%d", i+1, runs),
			"without_cpu_ns", ns1(h.RunsWithout[i]), "with_cpu_ns", ns1(cpu), "with_wall_ns", ns1(wall))
	}
	h.Without, h.With = median(h.RunsWithout), median(h.RunsWith)
	h.WallWithout, h.WallWith = median(wallWithout), median(wallWith)

	// Prove the probe fires once per call: the kernel counts program runs
	// while statistics are on. They are on only for this short run, so the
	// timed runs above paid nothing for them.
	h.VerifyCalls = 1000
	h.Verified, err = countRuns(exe, prog, hitloop, h.VerifyCalls)
	if err != nil {
		return hitCost{}, err
	}
	if h.Verified != uint64(h.VerifyCalls) {
		return hitCost{}, fmt.Errorf("the empty uprobe ran %d times for %d calls of %s: the calibration does not measure one hit per call", h.Verified, h.VerifyCalls, hitSymbol)
	}
	if h.With <= h.Without {
		return hitCost{}, fmt.Errorf("calls with the probe (%.1f ns) were not slower than without (%.1f ns)", h.With, h.Without)
	}
	return h, nil
}

func countRuns(exe *link.Executable, prog *ebpf.Program, hitloop string, calls int) (uint64, error) {
	stats, err := ebpf.EnableStats(unix.BPF_STATS_RUN_TIME)
	if err != nil {
		return 0, fmt.Errorf("enable BPF run statistics: %w", err)
	}
	defer stats.Close()
	before, err := prog.Stats()
	if err != nil {
		return 0, fmt.Errorf("read program statistics: %w", err)
	}
	up, err := exe.Uprobe(hitSymbol, prog, nil)
	if err != nil {
		return 0, fmt.Errorf("attach uprobe to %s in %s: %w", hitSymbol, hitloop, err)
	}
	_, _, err = runHitloop(hitloop, calls)
	up.Close()
	if err != nil {
		return 0, err
	}
	after, err := prog.Stats()
	if err != nil {
		return 0, fmt.Errorf("read program statistics: %w", err)
	}
	return after.RunCount - before.RunCount, nil
}

// runHitloop runs the hitloop binary and returns the wall and CPU ns per
// call it reports.
func runHitloop(path string, calls int) (wall, cpu float64, err error) {
	out, err := exec.Command(path, "-n", strconv.Itoa(calls)).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return 0, 0, fmt.Errorf("run %s: %v\n%s", path, err, ee.Stderr)
		}
		return 0, 0, fmt.Errorf("run %s: %w", path, err)
	}
	return parseHitloop(string(out))
}

// parseHitloop reads hitloop's "ns/call W cpu-ns/call C calls N" line.
func parseHitloop(out string) (wall, cpu float64, err error) {
	f := strings.Fields(out)
	if len(f) < 4 || f[0] != "ns/call" || f[2] != "cpu-ns/call" {
		return 0, 0, fmt.Errorf("hitloop printed %q, want \"ns/call W cpu-ns/call C ...\"", strings.TrimSpace(out))
	}
	if wall, err = strconv.ParseFloat(f[1], 64); err != nil {
		return 0, 0, fmt.Errorf("hitloop wall time: %w", err)
	}
	if cpu, err = strconv.ParseFloat(f[3], 64); err != nil {
		return 0, 0, fmt.Errorf("hitloop CPU time: %w", err)
	}
	return wall, cpu, nil
}

// hasSymbol checks that the binary defines the function the probe needs, so
// a renamed or inlined function is reported as such, not as an attach error.
func hasSymbol(path, name string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	syms, err := f.Symbols()
	if err != nil {
		return fmt.Errorf("symbols of %s: %w", path, err)
	}
	for _, s := range syms {
		if s.Name == name && elf.ST_TYPE(s.Info) == elf.STT_FUNC {
			return nil
		}
	}
	return fmt.Errorf("%s has no function symbol %s", path, name)
}
