package contract

// The kinds in every event's header (enum event_kind), as the ring-buffer
// reader dispatches on them.
const (
	EventHTTPServer = uint32(KernelEventKindEVENT_HTTP_SERVER)
	EventHTTPClient = uint32(KernelEventKindEVENT_HTTP_CLIENT)
	EventGCPause    = uint32(KernelEventKindEVENT_GC_PAUSE)
	EventGRPC       = uint32(KernelEventKindEVENT_GRPC)
)

// The slots of the shared per-CPU stats array (enum stat_slot).
const (
	StatHits    = uint32(KernelStatSlotSTAT_HITS)     // programs run: the probe hits the targets paid
	StatLost    = uint32(KernelStatSlotSTAT_LOST)     // events dropped on a full ring buffer
	StatNoEntry = uint32(KernelStatSlotSTAT_NO_ENTRY) // a return seen without its entry
	StatMax     = uint32(KernelStatSlotSTAT_MAX)      // the array's size
)

// The maps every probe object declares (events.h) and the manager creates
// once for all of them. A probe family's own maps are named by its bpf2go
// output (bpfMap..., injectMap...): use those constants, never the string.
const (
	MapEvents = KernelMapEvents // the ring buffer every event goes through
	MapStats  = KernelMapStats  // the per-CPU counters, indexed by the Stat slots
)
