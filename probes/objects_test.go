package probes

import (
	"testing"

	"github.com/cilium/ebpf"
)

func TestObjectKey(t *testing.T) {
	pts := []point{{prog: "b"}, {prog: "a"}, {prog: "b"}}
	k := objectKey("net/http", map[string]any{"x": uint64(1), "y": uint8(2)}, pts, true)
	for i := 0; i < 20; i++ { // map order does not matter
		if got := objectKey("net/http", map[string]any{"y": uint8(2), "x": uint64(1)}, []point{{prog: "a"}, {prog: "b"}}, true); got != k {
			t.Fatalf("same constants and programs, keys %q and %q", got, k)
		}
	}
	for name, other := range map[string]string{
		"value":   objectKey("net/http", map[string]any{"x": uint64(2), "y": uint8(2)}, pts, true),
		"type":    objectKey("net/http", map[string]any{"x": uint32(1), "y": uint8(2)}, pts, true),
		"absent":  objectKey("net/http", map[string]any{"x": uint64(1)}, pts, true),
		"program": objectKey("net/http", map[string]any{"x": uint64(1), "y": uint8(2)}, pts[:1], true),
		"multi":   objectKey("net/http", map[string]any{"x": uint64(1), "y": uint8(2)}, pts, false),
		"family":  objectKey("grpc", map[string]any{"x": uint64(1), "y": uint8(2)}, pts, true),
	} {
		if other == k {
			t.Errorf("a different %s gives the same key %q", name, k)
		}
	}
}

// An object is loaded once for every holder of its key and closed with
// the last.
func TestObjectsShared(t *testing.T) {
	var o objects
	loads := 0
	load := func() (*ebpf.Collection, error) { loads++; return &ebpf.Collection{}, nil }
	a, _ := o.get("k", load)
	b, _ := o.get("k", load)
	c, _ := o.get("other", load)
	if a != b || a == c || loads != 2 {
		t.Fatalf("same key: %p %p, other %p, %d loads; want one object for k, 2 loads", a, b, c, loads)
	}
	o.put(a)
	if live, _ := o.count(); live != 2 {
		t.Errorf("%d objects after one of k's two holders let go, want 2", live)
	}
	o.put(b)
	o.put(c)
	if live, n := o.count(); live != 0 || n != 2 {
		t.Errorf("%d objects, %d loaded after all let go, want 0 and 2", live, n)
	}
	if d, _ := o.get("k", load); d == a || loads != 3 {
		t.Errorf("k after its last holder let go: the old object, or no load (%d)", loads)
	}
}
