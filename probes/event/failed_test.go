package event

import "testing"

// TestFailed pins the one error rule per kind of call, as the OpenTelemetry
// semantic conventions give them: server 5xx, client 4xx and 5xx, gRPC
// server the six server-fault codes, gRPC client every code but OK.
func TestFailed(t *testing.T) {
	http := []struct {
		status   int
		panicked bool
		err      bool
		server   bool   // failed as a server
		srvType  string // server error.type
		client   bool   // failed as a client
		cliType  string // client error.type
	}{
		{status: 200},
		{status: 0},
		{status: 302},
		{status: 399},
		{status: 400, client: true, cliType: "400"},
		{status: 404, client: true, cliType: "404"},
		{status: 499, client: true, cliType: "499"},
		{status: 500, server: true, srvType: "500", client: true, cliType: "500"},
		{status: 503, server: true, srvType: "503", client: true, cliType: "503"},
		{status: 599, server: true, srvType: "599", client: true, cliType: "599"},
		{status: 0, panicked: true, server: true, srvType: "panic"},
		{status: 202, panicked: true, server: true, srvType: "panic"},
		{status: 0, err: true, client: true, cliType: "*net.OpError"},
		{status: 200, err: true, client: true, cliType: "*net.OpError"},
	}
	for _, c := range http {
		s := &HTTPServer{Status: c.status, Panicked: c.panicked}
		if s.Failed() != c.server || s.ErrorType() != c.srvType {
			t.Errorf("server status %d panicked %v: Failed %v ErrorType %q, want %v %q",
				c.status, c.panicked, s.Failed(), s.ErrorType(), c.server, c.srvType)
		}
		if c.panicked {
			continue
		}
		cl := &HTTPClient{Status: c.status, Err: c.err, ErrorType: "*net.OpError"}
		if cl.Failed() != c.client || cl.FailureType() != c.cliType {
			t.Errorf("client status %d err %v: Failed %v FailureType %q, want %v %q",
				c.status, c.err, cl.Failed(), cl.FailureType(), c.client, c.cliType)
		}
	}

	// Every code, and the codes no status carries: -1 is "the probe could
	// not read it", 17 and up are not codes at all. Both sides treat them
	// as grpc-go treats a status it cannot classify, UNKNOWN: an error.
	serverErr := map[int]bool{2: true, 4: true, 12: true, 13: true, 14: true, 15: true, -1: true, 17: true, 99: true}
	for code := -1; code <= 17; code++ {
		for _, c := range []int{code, 99} {
			srv := &GRPC{Server: true, Code: c}
			if srv.Failed() != serverErr[c] {
				t.Errorf("gRPC server code %d (%s): Failed %v, want %v", c, srv.CodeName(), srv.Failed(), serverErr[c])
			}
			cl := &GRPC{Code: c}
			if cl.Failed() != (c != 0) {
				t.Errorf("gRPC client code %d (%s): Failed %v, want %v", c, cl.CodeName(), cl.Failed(), c != 0)
			}
		}
	}
}
