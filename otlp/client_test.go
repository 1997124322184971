package otlp

import (
	"bytes"
	"runtime"
	"testing"

	"google.golang.org/grpc/mem"
)

// A request's copy carries its bytes, and its buffer, once gRPC frees it,
// serves the next request without a new allocation.
func TestMarshalReusesBuffer(t *testing.T) {
	list := &bufferList{max: 2, largest: 1 << 20}
	saved := requestBuffers
	requestBuffers = list
	defer func() { requestBuffers = saved }()

	first := bytes.Repeat([]byte("a"), 200<<10)
	bs, err := rawCodec{}.Marshal(rawRequest(first))
	if err != nil {
		t.Fatal(err)
	}
	if got := bs.Materialize(); !bytes.Equal(got, first) {
		t.Fatalf("marshalled %d bytes, not the request's %d", len(got), len(first))
	}
	sent := &bs[0].ReadOnlyData()[0]
	bs.Free()
	if len(list.free) != 1 {
		t.Fatalf("%d buffers kept after Free, want 1", len(list.free))
	}

	// A smaller request reuses it, and gets only its own bytes.
	second := bytes.Repeat([]byte("b"), 150<<10)
	bs, err = rawCodec{}.Marshal(rawRequest(second))
	if err != nil {
		t.Fatal(err)
	}
	if got := bs.Materialize(); !bytes.Equal(got, second) {
		t.Fatalf("second request: %d bytes, not its %d", len(got), len(second))
	}
	if &bs[0].ReadOnlyData()[0] != sent {
		t.Error("second request did not reuse the freed buffer")
	}
	bs.Free()

	// mem.NewBuffer's header and the slice holding it are small
	// allocations; the request's bytes must never be allocated again.
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range 100 {
		bs, _ := rawCodec{}.Marshal(rawRequest(second))
		bs.Free()
	}
	runtime.ReadMemStats(&after)
	if per := (after.TotalAlloc - before.TotalAlloc) / 100; per > 1024 {
		t.Errorf("%d bytes allocated per %d-byte request once warm, want under 1 KiB", per, len(second))
	}
}

func TestBufferListBounds(t *testing.T) {
	l := &bufferList{max: 2, largest: 1000}
	put := func(n int) { b := make([]byte, n); l.Put(&b) }
	put(2000) // over largest: not kept
	if len(l.free) != 0 {
		t.Fatalf("kept a buffer over the largest size")
	}
	put(100)
	put(300)
	put(200) // full: replaces the smallest (100)
	put(50)  // full, smaller than every kept one: dropped
	var caps []int
	for _, b := range l.free {
		caps = append(caps, cap(*b))
	}
	if len(caps) != 2 || caps[0]+caps[1] != 500 {
		t.Fatalf("kept capacities %v, want 300 and 200", caps)
	}
	if b := l.Get(250); cap(*b) != 300 || len(*b) != 250 {
		t.Errorf("Get(250) = len %d cap %d, want the kept 300-byte buffer", len(*b), cap(*b))
	}
	if b := l.Get(250); cap(*b) < 250 || len(*b) != 250 || len(l.free) != 1 {
		t.Errorf("Get(250) with only a 200-byte buffer kept = len %d cap %d (%d kept), want a new one, the 200 still kept", len(*b), cap(*b), len(l.free))
	}
}

// BenchmarkMarshal is the copy of one batch's request (a few hundred KiB)
// for gRPC, and its release: with gRPC's default pool, and with golens'.
func BenchmarkMarshal(b *testing.B) {
	req := bytes.Repeat([]byte("x"), 180<<10)
	for _, bc := range []struct {
		name string
		pool mem.BufferPool
	}{{"grpc-default", mem.DefaultBufferPool()}, {"golens", requestBuffers}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(req)))
			for b.Loop() {
				buf := mem.Copy(req, bc.pool)
				buf.Free()
			}
		})
	}
}
