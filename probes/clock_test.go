package probes

import (
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The manager re-syncs the clock on its own goroutine while the reader
// converts event times: under -race, an unsynchronised offset fails here.
func TestClockSyncWhileReading(t *testing.T) {
	c := NewClock()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 100 {
			c.Sync()
		}
	}()
	for range 100 {
		if got := c.Time(0); got.After(time.Now()) {
			t.Fatalf("boot time %v is in the future", got)
		}
	}
	wg.Wait()
}

func TestClockTime(t *testing.T) {
	c := NewClock()
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(c.Time(uint64(ts.Nano()))); d < -time.Millisecond || d > time.Millisecond {
		t.Fatalf("the monotonic clock's now converts to %v from now", d)
	}
}
