// Package goruntime instruments the Go runtime: stop-the-world pauses and
// the GC cycles they belong to.
package goruntime

import (
	"fmt"

	"github.com/golens/golens/probes"
	"github.com/golens/golens/probes/contract"
	"github.com/golens/golens/probes/event"
)

// Probe declares the runtime probe. Both functions run a few times per GC
// cycle, never on the allocation path.
var Probe = probes.Spec{
	Name:  "runtime.gc",
	MinGo: 21, // stopTheWorldWithSema takes its reason since Go 1.21
	Hooks: []probes.Hook{{
		Name:   "stop",
		Symbol: "runtime.stopTheWorldWithSema",
		Entry:  "uprobe_stw_entry",
	}, {
		Name:   "start",
		Symbol: "runtime.startTheWorldWithSema",
		Return: "uprobe_stw_return",
	}},
	Globals: []probes.Global{{
		AddrConst: "gc_controller_addr",
		Symbol:    "runtime.gcController",
		Field:     probes.Field{Const: "off_heap_marked", Struct: "runtime.gcControllerState", Field: "heapMarked"},
	}, {
		AddrConst: "sched_addr",
		Symbol:    "runtime.sched",
		Field:     probes.Field{Const: "off_sched_goidgen", Struct: "runtime.schedt", Field: "goidgen"},
	}},
	// One pause in progress per process: one map for the node.
	PerPid:   []string{bpfMapStw},
	Load:     loadBpf,
	Decoders: map[uint32]probes.Decoder{contract.EventGCPause: decode},
}

func decode(raw []byte, t *probes.Target) (event.Event, error) {
	e, err := probes.View[bpfGcPauseEvent](raw)
	if err != nil {
		return nil, fmt.Errorf("gc pause %w", err)
	}
	return &event.Pause{
		Process:          t.Proc,
		Start:            t.Clock.Time(e.StartNs),
		End:              t.Clock.Time(e.EndNs),
		Reason:           event.PauseReason(e.Reason),
		HeapMarked:       e.HeapMarked,
		GoroutinesIssued: e.Goidgen,
	}, nil
}
