package contract

import "testing"

// TestStatsArray: the shared stats array is sized by the same enum the Go
// side reads its slots from, so a slot added in C is in range here.
func TestStatsArray(t *testing.T) {
	spec, err := LoadKernel()
	if err != nil {
		t.Fatal(err)
	}
	st := spec.Maps["stats"]
	if st == nil {
		t.Fatal("no stats map in the contract object")
	}
	if st.MaxEntries != StatMax {
		t.Errorf("stats has %d slots, StatMax is %d", st.MaxEntries, StatMax)
	}
	for _, s := range []uint32{StatHits, StatLost, StatNoEntry} {
		if s >= StatMax {
			t.Errorf("slot %d out of the array's %d", s, StatMax)
		}
	}
	kinds := map[uint32]bool{}
	for _, k := range []uint32{EventHTTPServer, EventHTTPClient, EventGCPause, EventGRPC} {
		if k == 0 || kinds[k] {
			t.Errorf("event kind %d is zero or used twice", k)
		}
		kinds[k] = true
	}
}
