package probes

import (
	"testing"

	"github.com/cilium/ebpf"
)

// A slot's counts from every CPU add up; a slot past the array's end is an
// error, not a zero.
func TestSumSlot(t *testing.T) {
	cpus, err := ebpf.PossibleCPU()
	if err != nil {
		t.Fatal(err)
	}
	mp, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 8, MaxEntries: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer mp.Close()
	per := make([]uint64, cpus)
	var want uint64
	for i := range per {
		per[i] = uint64(10*i + 3)
		want += per[i]
	}
	if err := mp.Put(uint32(1), per); err != nil {
		t.Fatal(err)
	}
	if got, err := SumSlot(mp, 1); err != nil || got != want {
		t.Errorf("SumSlot(1) = %d, %v; want %d over %d CPUs", got, err, want, cpus)
	}
	if got, err := SumSlot(mp, 0); err != nil || got != 0 {
		t.Errorf("SumSlot(0) = %d, %v; want 0", got, err)
	}
	if _, err := SumSlot(mp, 2); err == nil {
		t.Error("SumSlot past the end gave no error")
	}
}
