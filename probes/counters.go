package probes

import (
	"fmt"

	"github.com/cilium/ebpf"
)

// SumSlot is one slot of a per-CPU counter array (a probe family's stats
// map) summed over every CPU.
func SumSlot(mp *ebpf.Map, slot uint32) (uint64, error) {
	var per []uint64
	if err := mp.Lookup(slot, &per); err != nil {
		return 0, fmt.Errorf("read slot %d of %s: %w", slot, mp, err)
	}
	var n uint64
	for _, v := range per {
		n += v
	}
	return n, nil
}
