// Package probes loads, attaches and detaches the eBPF probes that observe a
// target Go process, and turns the events they emit into event values.
//
// A probe family (net/http, grpc, runtime) is declared as a Spec: which
// functions it hooks, which struct field offsets its programs need, which Go
// releases it supports. The Manager does the generic work for every family:
// inspect the binary, resolve symbols and RET offsets, fill in per-target
// constants, load, attach, read the shared ring buffer, close.
package probes

import (
	"errors"
	"fmt"
	"unsafe"

	"github.com/cilium/ebpf"

	"github.com/golens/golens/probes/event"
	"github.com/golens/golens/probes/inspect"
)

// Reasons a probe is refused for a target; check with errors.Is.
var (
	ErrUnsupportedGo = errors.New("unsupported Go version")
	ErrNoOffsets     = errors.New("struct field offset unknown (no DWARF and no generated offsets for this version)")
	ErrNoFunction    = errors.New("instrumented function not in binary")
	ErrNotGo         = errors.New("not a Go program")
	// ErrNotLinked says the target does not use the library a probe family
	// instruments: not a refusal, nothing to attach.
	ErrNotLinked = errors.New("library not linked into the binary")
	// ErrPanic says inspecting or attaching a target panicked: the target
	// is refused, the agent goes on.
	ErrPanic = errors.New("inspecting the binary panicked")
	// ErrExecDuringAttach says the target kept executing other programs
	// while it was being attached.
	ErrExecDuringAttach = errors.New("process executed another program while being attached")
)

// Hook is one function a probe instruments: a program at its entry and/or a
// program at every RET instruction (Go moves stacks, so no uretprobes).
type Hook struct {
	Name   string // short name for logs, e.g. "client"
	Symbol string // e.g. "net/http.serverHandler.ServeHTTP"
	Entry  string // program run at entry; empty for none
	Return string // program run at each RET; empty for none
	// Fields only this hook's programs need; when they cannot be resolved
	// an optional hook is dropped and a required one refuses the probe.
	Fields []Field
	// Consts are set when the hook is attached (feature switches in C).
	Consts map[string]any
	// Optional hooks are skipped when the function is absent (the linker
	// dropped it: the program never makes HTTP calls, say) or their
	// offsets are unknown; a missing required hook refuses the probe.
	Optional bool
	// Feature, when set, attaches the hook only if the manager was asked
	// for that feature (costly hooks are opt-in).
	Feature string
}

// Field names a struct field whose offset a program needs, and the constant
// (volatile const in C) that receives it.
type Field struct {
	Const  string // C global, e.g. "off_req_method"
	Struct string // Go type, e.g. "net/http.Request"
	Field  string // field name, e.g. "Method"
	// MinGo is the first Go 1.x minor release with this field; for older
	// targets the constant stays 0, which the C code reads as "absent".
	MinGo int
	// Optional fields the target's Go may lack (a type renamed or moved
	// between releases) leave the constant 0 rather than refuse the probe.
	Optional bool
}

// Global is a runtime global a program reads: its address in the running
// process goes into AddrConst and the offset of Field inside it into
// Field.Const. Both stay 0 (the C code then skips the read) when the binary
// has no symbol table or the field is unknown: globals are extras.
type Global struct {
	AddrConst string // e.g. "gc_controller_addr"
	Symbol    string // e.g. "runtime.gcController"
	Field     Field  // e.g. {Const: "off_heap_marked", Struct: "runtime.gcControllerState", Field: "heapMarked"}
}

// TypeAddr asks for the run-time address of a Go type's descriptor, in
// Const: what the type word of an interface holding that type is, so a
// program can tell which dynamic type an interface holds before reading
// it as that type. It is read from an itab of the type for Iface, which
// needs the symbol table; it stays 0 (the C code must then check the
// value's shape instead, or give up) in stripped binaries, when the bias
// of a PIE is unknown, and when the program never converts the type to
// Iface.
type TypeAddr struct {
	Const string // C global, e.g. "tcpconn_type"
	Type  string // e.g. "*net.TCPConn"
	Iface string // e.g. "net.Conn"
}

// FuncAddr asks for the run-time address of a function's entry, in Const:
// what an itab's method word holds for that method, so a program can tell
// an interface's dynamic type by its methods even in a stripped binary (the
// function is found through .gopclntab). It stays 0 when the function is
// absent or the load bias of a PIE is unknown.
type FuncAddr struct {
	Const  string // C global, e.g. "cancelctx_done"
	Symbol string // e.g. "context.(*cancelCtx).Done"
}

// Decoder turns one raw event of the probe's kind into an event value.
type Decoder func(raw []byte, t *Target) (event.Event, error)

// Target is what a decoder may know of the process an event came from.
type Target struct {
	Proc  *event.Process
	Clock *Clock
	// ErrorType names the dynamic type of an error from its itab address
	// as seen in the process; "" when unknown (stripped binary).
	ErrorType func(itab uint64) string
	// Text makes the target's strings, remembering the recent ones; nil
	// makes each afresh.
	Text *Text
}

// Spec declares one probe family.
type Spec struct {
	Name string // e.g. "net/http server"
	// Library, when set, is a function present in every binary that uses
	// the instrumented library; without it the family is skipped quietly.
	Library string
	MinGo   int // oldest Go 1.x minor supported
	Hooks   []Hook
	Fields  []Field
	// ReadsGoMaps says the programs include go_map.h and need the map
	// layout constants of the target's Go release.
	ReadsGoMaps bool
	// Globals the programs read, best effort.
	Globals []Global
	// Types whose descriptor addresses the programs compare, best effort.
	Types []TypeAddr
	// Funcs whose entry addresses the programs compare, best effort.
	Funcs []FuncAddr
	// Shared names maps that every target's objects share (one instance
	// for the whole agent), besides the ring buffer and the stats. Name
	// them with the family's bpf2go constants (bpfMap...), not strings.
	Shared []string
	// PerPid names maps shared like Shared whose keys begin with the pid
	// (a __u32 at offset 0): one instance for the node, and the entries of
	// a released target are deleted (see Manager.forgetPid), so that a
	// process that reuses its pid finds none of them.
	PerPid []string
	// FeatureConsts are constants set when a feature is on.
	FeatureConsts map[string]map[string]any
	// Tune, when set, returns constants that depend on the target's
	// library versions (layout switches the offsets alone cannot express).
	Tune func(b *inspect.Binary) map[string]any
	// Load returns a fresh copy of the compiled objects (bpf2go's loader).
	Load func() (*ebpf.CollectionSpec, error)
	// Decoders by event kind (enum event_kind in bpf/include/events.h).
	Decoders map[uint32]Decoder
	// Sockets, when set, are programs on the targets' sockets rather than
	// in them, attached once for the agent while their feature is on.
	Sockets *SocketPrograms
}

// View reads raw, one event as the ring buffer delivered it, as a *T: a
// fixed-size view with no copy and no reflection, after checking raw is
// long enough. Decoders use it with their bpf2go event types.
func View[T any](raw []byte) (*T, error) {
	var zero T
	if len(raw) < int(unsafe.Sizeof(zero)) {
		return nil, fmt.Errorf("event of %d bytes, want %d", len(raw), unsafe.Sizeof(zero))
	}
	return (*T)(unsafe.Pointer(&raw[0])), nil
}
