package probes

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/golens/golens/probes/inspect"
)

// image is the program a target process runs, as Attach found it.
type image struct {
	pid  int
	auxv []byte // the process's auxiliary vector
	// bias is added to a link-time address of the executable to get its
	// address in the process: 0 for a fixed-address executable. biasErr
	// says why it is unknown (a PIE whose load address was not found);
	// whatever needs run-time addresses is then left out.
	bias    uint64
	biasErr error
}

// atEntry is the auxiliary vector's AT_ENTRY: the program's entry point,
// where the kernel loaded it.
const atEntry = 9

// readAuxv reads the auxiliary vector of pid: the kernel's notes to the
// program it started, made anew at every exec (they point into the new
// stack, at the new entry point).
func readAuxv(pid int) ([]byte, error) {
	return os.ReadFile(fmt.Sprintf("/proc/%d/auxv", pid))
}

// readImage reads what pid runs bin as.
func readImage(pid int, bin *inspect.Binary) *image {
	auxv, _ := readAuxv(pid)
	return newImage(pid, auxv, bin)
}

// newImage is what pid, whose auxiliary vector is auxv, runs bin as.
func newImage(pid int, auxv []byte, bin *inspect.Binary) *image {
	im := &image{pid: pid, auxv: auxv}
	if !bin.PIE {
		return im
	}
	// Go links a PIE at 0x400000, like a fixed-address executable, so
	// where its first page is mapped is not the bias; the entry point,
	// loaded and as linked, tells it exactly.
	entry, ok := auxvValue(auxv, atEntry) // false for an unreadable vector too
	if !ok || entry < bin.Entry {
		im.biasErr = errors.New("load address of PIE: no entry point in the auxiliary vector")
		return im
	}
	im.bias = entry - bin.Entry
	return im
}

// auxvValue returns the value of tag in an auxiliary vector (pairs of
// 64-bit words, ended by AT_NULL).
func auxvValue(auxv []byte, tag uint64) (uint64, bool) {
	le := binary.LittleEndian
	for ; len(auxv) >= 16; auxv = auxv[16:] {
		t := le.Uint64(auxv)
		if t == 0 {
			break
		}
		if t == tag {
			return le.Uint64(auxv[8:]), true
		}
	}
	return 0, false
}

// errorTypes resolves error itab addresses seen in the process to type
// names, from the binary's symbols shifted by the load bias. It knows
// none when the bias is unknown.
func (im *image) errorTypes(bin *inspect.Binary) func(uint64) string {
	var itabs map[uint64]string
	if im.biasErr == nil {
		itabs = bin.ErrorItabs()
	}
	bias := im.bias
	return func(itab uint64) string {
		return itabs[itab-bias]
	}
}

// unchanged checks that the process still runs what it ran when the image
// was read, once its probes are attached: that it is alive (so every
// /proc/PID read was of it, not of a process that reused the pid), that
// its executable is the file bin was read from, and that its auxiliary
// vector is the one read then (a new one comes with each exec, even of
// the same file, and with it a new load bias). The error wraps
// ErrExecDuringAttach.
func (im *image) unchanged(bin *inspect.Binary, pidfd *os.File) error {
	// Not pidfd.Fd(): that would take the pidfd out of non-blocking mode,
	// which the exit watcher's wait through the runtime's poller needs.
	rc, err := pidfd.SyscallConn()
	if err != nil {
		return fmt.Errorf("pid %d: %w", im.pid, err)
	}
	var gone bool
	if err := rc.Control(func(fd uintptr) {
		gone = errors.Is(unix.PidfdSendSignal(int(fd), 0, nil, 0), unix.ESRCH)
	}); err != nil {
		return fmt.Errorf("pid %d: %w", im.pid, err)
	}
	if gone {
		return fmt.Errorf("pid %d: exited while being attached", im.pid)
	}
	var now, read unix.Stat_t
	if err := unix.Stat(fmt.Sprintf("/proc/%d/exe", im.pid), &now); err != nil {
		return fmt.Errorf("pid %d: %w", im.pid, err)
	}
	if err := unix.Fstat(int(bin.File().Fd()), &read); err != nil {
		return fmt.Errorf("pid %d: %w", im.pid, err)
	}
	auxv, err := readAuxv(im.pid)
	if err != nil {
		return fmt.Errorf("pid %d: %w", im.pid, err)
	}
	if now.Dev != read.Dev || now.Ino != read.Ino || !bytes.Equal(auxv, im.auxv) {
		return fmt.Errorf("pid %d: %w", im.pid, ErrExecDuringAttach)
	}
	return nil
}
