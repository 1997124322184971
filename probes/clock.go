package probes

import (
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Clock converts the kernel's CLOCK_MONOTONIC timestamps (bpf_ktime_get_ns)
// to wall-clock time.
// Sync runs on the manager's resync goroutine while decoders call Time on
// the reader goroutine, so the offset is atomic.
type Clock struct {
	offset atomic.Int64 // wall ns minus monotonic ns
}

// NewClock measures the current offset between the two clocks.
func NewClock() *Clock {
	c := &Clock{}
	c.Sync()
	return c
}

// Sync re-measures the offset (call it now and then to follow NTP steps).
func (c *Clock) Sync() {
	var ts unix.Timespec
	before := time.Now()
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	after := time.Now()
	wall := before.UnixNano() + after.Sub(before).Nanoseconds()/2
	c.offset.Store(wall - ts.Nano())
}

// Time returns the wall-clock time of a monotonic timestamp in ns.
func (c *Clock) Time(mono uint64) time.Time {
	return time.Unix(0, int64(mono)+c.offset.Load())
}
