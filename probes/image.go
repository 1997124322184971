package probes

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"

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

// readImage reads what pid runs bin as.
func readImage(pid int, bin *inspect.Binary) *image {
	im := &image{pid: pid}
	auxv, err := os.ReadFile(fmt.Sprintf("/proc/%d/auxv", pid))
	im.auxv = auxv
	if !bin.PIE {
		return im
	}
	if err != nil {
		im.biasErr = fmt.Errorf("load address of PIE: %w", err)
		return im
	}
	// Go links a PIE at 0x400000, like a fixed-address executable, so
	// where its first page is mapped is not the bias; the entry point,
	// loaded and as linked, tells it exactly.
	entry, ok := auxvValue(auxv, atEntry)
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
