// Command hitloop calls one small function many times and prints how long a
// call took on average, in wall time and in CPU time of the calling thread.
// The benchmark attaches an empty uprobe to main.work and runs it with and
// without the probe: the difference is the cost of one uprobe hit here.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"syscall"
	"time"
	"unsafe"
)

// clockThreadCPUTime is Linux's CLOCK_THREAD_CPUTIME_ID, which package
// syscall does not name.
const clockThreadCPUTime = 3

// sink keeps work's result alive so the compiler cannot drop the calls.
var sink uint64

// work is the probed function. It must stay a real call, hence noinline.
//
//go:noinline
func work(x uint64) uint64 {
	return x*2654435761 + 1
}

// threadCPU is the CPU time (user plus system) of the calling thread. A
// uprobe hit is handled in the context of the thread that hit it, so its
// cost shows here even when other processes compete for the CPUs, which
// would inflate wall time.
//
// clock_gettime is used rather than getrusage because it includes the time
// run since the last tick: it is exact to the nanosecond.
func threadCPU() time.Duration {
	var ts syscall.Timespec
	_, _, errno := syscall.Syscall(syscall.SYS_CLOCK_GETTIME, clockThreadCPUTime, uintptr(unsafe.Pointer(&ts)), 0)
	if errno != 0 {
		fmt.Fprintln(os.Stderr, "clock_gettime:", errno)
		os.Exit(1)
	}
	return time.Duration(ts.Nano())
}

func main() {
	n := flag.Int("n", 200000, "calls to make")
	flag.Parse()
	// Keep the loop on one thread so that the thread's CPU time is the loop's.
	runtime.LockOSThread()

	var acc uint64
	cpu0, wall0 := threadCPU(), time.Now()
	for i := 0; i < *n; i++ {
		acc += work(uint64(i))
	}
	wall, cpu := time.Since(wall0), threadCPU()-cpu0
	sink = acc
	// The benchmark parses this line.
	fmt.Printf("ns/call %.3f cpu-ns/call %.3f calls %d\n",
		float64(wall.Nanoseconds())/float64(*n), float64(cpu.Nanoseconds())/float64(*n), *n)
}
