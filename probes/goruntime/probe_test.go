package goruntime

import (
	"reflect"
	"testing"
	"time"
	"unsafe"

	"github.com/golens/golens/probes"
	"github.com/golens/golens/probes/contract"
	"github.com/golens/golens/probes/event"
)

func raw(e *bpfGcPauseEvent) []byte {
	return append([]byte(nil), unsafe.Slice((*byte)(unsafe.Pointer(e)), unsafe.Sizeof(*e))...)
}

var tg = &probes.Target{Proc: &event.Process{PID: 3}, Clock: &probes.Clock{}}

func TestDecode(t *testing.T) {
	in := &bpfGcPauseEvent{StartNs: 5_000, EndNs: 55_000, HeapMarked: 4 << 20, Goidgen: 1234, Reason: 1}
	in.Hdr.Kind = contract.EventGCPause
	got, err := decode(raw(in), tg)
	if err != nil {
		t.Fatal(err)
	}
	want := &event.Pause{Process: tg.Proc, Start: time.Unix(0, 5_000), End: time.Unix(0, 55_000),
		Reason: event.PauseGCMarkTermination, HeapMarked: 4 << 20, GoroutinesIssued: 1234}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
	if _, err := decode(raw(in)[:20], tg); err == nil {
		t.Error("a short event decoded")
	}
}

// FuzzDecode: any bytes decode to a pause or an error, never a panic.
func FuzzDecode(f *testing.F) {
	in := &bpfGcPauseEvent{StartNs: 5_000, EndNs: 55_000, HeapMarked: 4 << 20, Goidgen: 1234, Reason: 2}
	in.Hdr.Kind = contract.EventGCPause
	f.Add(raw(in))
	f.Add([]byte{3, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, err := decode(b, tg)
		if err != nil {
			return
		}
		if p := ev.(*event.Pause); p.Process != tg.Proc {
			t.Fatal("pause without its process")
		}
	})
}

// A pause makes no span: it answers the tracer's question (a GC stop, and
// its window, for the spans it overlaps) and the metrics' (a GC pause
// that ends a cycle at mark termination). A stop for another reason
// answers neither.
func TestPauseAnswers(t *testing.T) {
	for _, c := range []struct {
		name   string
		reason uint32
		gc     bool
		want   event.Measure
	}{
		{"mark termination", 1, true, event.Measure{Instrument: event.GCPauses, Duration: 50 * time.Microsecond,
			CycleDone: true, HeapMarked: 4 << 20, GoroutinesIssued: 1234}},
		{"sweep termination", 2, true, event.Measure{Instrument: event.GCPauses, Duration: 50 * time.Microsecond,
			HeapMarked: 4 << 20, GoroutinesIssued: 1234}},
		{"ReadMemStats", 7, false, event.Measure{}},
	} {
		in := &bpfGcPauseEvent{StartNs: 5_000, EndNs: 55_000, HeapMarked: 4 << 20, Goidgen: 1234, Reason: c.reason}
		in.Hdr.Kind = contract.EventGCPause
		ev, err := decode(raw(in), tg)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := ev.(event.Spanner); ok {
			t.Errorf("%s: a pause makes a span", c.name)
		}
		start, end, gc := ev.(event.Stopper).GCStop()
		if gc != c.gc || !start.Equal(time.Unix(0, 5_000)) || !end.Equal(time.Unix(0, 55_000)) {
			t.Errorf("%s: GC stop %v..%v %v, want 5µs..55µs %v", c.name, start, end, gc, c.gc)
		}
		if got := ev.(event.Measured).Measure(); got != c.want {
			t.Errorf("%s: measure\n got %+v\nwant %+v", c.name, got, c.want)
		}
	}
}
