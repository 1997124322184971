package agent

import (
	"net"
	"testing"
)

// Only a loopback pprof address goes without a warning.
func TestLoopback(t *testing.T) {
	for _, c := range []struct {
		ip   string
		want bool
	}{{"127.0.0.1", true}, {"127.1.2.3", true}, {"::1", true}, {"0.0.0.0", false}, {"::", false}, {"10.0.0.7", false}} {
		if got := loopback(&net.TCPAddr{IP: net.ParseIP(c.ip), Port: 6060}); got != c.want {
			t.Errorf("loopback(%s) = %v, want %v", c.ip, got, c.want)
		}
	}
}
