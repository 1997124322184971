package kernels

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golens/golens/test/harness"
)

// The cells each traced kernel runs besides the plain server: calls from
// one watched process to another (HTTP, and gRPC unary), each leg exact,
// with a stripped build on one side of every call. They run in the same
// guest boot and under the same agent as the plain server (one boot and
// one agent start-up per kernel); what they add is the three targets'
// attaches, ~25 s per kernel emulated (the unstripped gRPC app's DWARF most).

// cellTarget is one process a cell's calls go through.
type cellTarget struct {
	service string // its OTEL_SERVICE_NAME
	bin     string // in the initramfs
	args    string // its flags in the guest
	app     string // test/apps/<app>, built as v
	v       harness.Variant
}

// The guest's plain server (qemusvc, 127.0.0.1:8080) is the cells' A
// side of HTTP: one fewer process to start and attach to. The oldest Go
// golens supports and the newest are built besides the installed one,
// one of the two stripped.
var cellTargets = []cellTarget{
	{"svc-b", "/httpserver-stripped", "-addr 127.0.0.1:8082", "httpserver", harness.Variant{Stripped: true}},
	{"grpc-a", "/grpcapp", "-addr 127.0.0.1:8091 -grpc-addr 127.0.0.1:9091", "grpcapp", harness.Variant{}},
	{"grpc-b", "/grpcapp-stripped", "-addr 127.0.0.1:8092 -grpc-addr 127.0.0.1:9092", "grpcapp", harness.Variant{Stripped: true}},
	{"svc-go121", "/httpserver-go121", "-addr 127.0.0.1:8083", "httpserver", harness.Variant{Go: "go1.21.13"}},
	{"svc-go127", "/httpserver-go127-stripped", "-addr 127.0.0.1:8084", "httpserver", harness.Variant{Go: "go1.27.3", Stripped: true}},
}

// wantSpan is one span of a cell, in the order of the call chain: each
// one's parent is the span before it, the first one's the incoming
// traceparent's.
type wantSpan struct {
	service, kind, name, status string
	attrs                       map[string]string // as printed: strings quoted
}

// cell is one request sent into the guest's targets with a traceparent,
// and the spans it must make.
type cell struct {
	name          string
	about         string // in the README's support table
	url           string // what the guest's wget asks for
	trace, parent string // the incoming traceparent's
	wgetOK        bool   // whether the target answers 2xx
	spans         []wantSpan
}

var cells = []cell{{
	// A's handler calls stripped B with the request's context.
	name: "http-chain", about: "HTTP → stripped HTTP",
	url:   "http://127.0.0.1:8080/chain?to=http%3A%2F%2F127.0.0.1%3A8082%2Fecho%2Fc1",
	trace: "11111111111111111111111111111111", parent: "1111111111111111", wgetOK: true,
	spans: []wantSpan{
		{"qemusvc", "server", "GET /chain", "Unset", map[string]string{"http.request.method": `"GET"`, "url.path": `"/chain"`, "http.route": `"/chain"`, "http.response.status_code": "200"}},
		{"qemusvc", "client", "GET", "Unset", map[string]string{"url.full": `"http://127.0.0.1:8082/echo/c1"`, "server.port": "8082", "http.response.status_code": "200"}},
		{"svc-b", "server", "GET /echo/", "Unset", map[string]string{"url.path": `"/echo/c1"`, "http.route": `"/echo/"`, "server.port": "8082", "http.response.status_code": "200"}},
	},
}, {
	// Stripped B is the caller, and what it calls fails.
	name: "http-chain-stripped-caller", about: "stripped HTTP → HTTP 503",
	url:   "http://127.0.0.1:8082/chain?to=http%3A%2F%2F127.0.0.1%3A8080%2Fstatus%2F503",
	trace: "22222222222222222222222222222222", parent: "2222222222222222",
	spans: []wantSpan{
		{"svc-b", "server", "GET /chain", "Error", map[string]string{"url.path": `"/chain"`, "http.response.status_code": "503"}},
		{"svc-b", "client", "GET", "Error", map[string]string{"url.full": `"http://127.0.0.1:8080/status/503"`, "http.response.status_code": "503", "error.type": `"503"`}},
		{"qemusvc", "server", "GET /status/", "Error", map[string]string{"url.path": `"/status/503"`, "http.route": `"/status/"`, "http.response.status_code": "503"}},
	},
}, {
	// A's HTTP handler makes a unary gRPC call to stripped B.
	name: "grpc-unary", about: "HTTP → gRPC unary → stripped gRPC",
	url:   "http://127.0.0.1:8091/call?method=Ok&target=127.0.0.1%3A9092",
	trace: "33333333333333333333333333333333", parent: "3333333333333333", wgetOK: true,
	spans: []wantSpan{
		{"grpc-a", "server", "GET /call", "Unset", map[string]string{"url.path": `"/call"`, "http.response.status_code": "200"}},
		{"grpc-a", "client", "test.Echo/Ok", "Unset", map[string]string{"rpc.system": `"grpc"`, "rpc.service": `"test.Echo"`, "rpc.method": `"Ok"`, "rpc.grpc.status_code": "0", "server.port": "9092"}},
		{"grpc-b", "server", "test.Echo/Ok", "Unset", map[string]string{"rpc.system": `"grpc"`, "rpc.service": `"test.Echo"`, "rpc.method": `"Ok"`, "rpc.grpc.status_code": "0", "client.address": `"127.0.0.1"`}},
	},
}, {
	// Stripped B calls A, whose handler fails (INTERNAL).
	name: "grpc-unary-stripped-caller", about: "stripped gRPC → gRPC INTERNAL",
	url:   "http://127.0.0.1:8092/call?method=Fail&target=127.0.0.1%3A9091",
	trace: "44444444444444444444444444444444", parent: "4444444444444444",
	spans: []wantSpan{
		{"grpc-b", "server", "GET /call", "Error", map[string]string{"url.path": `"/call"`, "http.response.status_code": "502"}},
		{"grpc-b", "client", "test.Echo/Fail", "Error", map[string]string{"rpc.service": `"test.Echo"`, "rpc.method": `"Fail"`, "rpc.grpc.status_code": "13", "server.port": "9091"}},
		{"grpc-a", "server", "test.Echo/Fail", "Error", map[string]string{"rpc.service": `"test.Echo"`, "rpc.method": `"Fail"`, "rpc.grpc.status_code": "13"}},
	},
}, {
	// Go 1.21 calls stripped Go 1.27. Go before 1.23 records no ServeMux
	// pattern: its server spans are named by the method alone, no route.
	name: "http-chain-go121-go127", about: "Go 1.21 HTTP → stripped Go 1.27 HTTP",
	url:   "http://127.0.0.1:8083/chain?to=http%3A%2F%2F127.0.0.1%3A8084%2Fecho%2Fc5",
	trace: "55555555555555555555555555555555", parent: "5555555555555555", wgetOK: true,
	spans: []wantSpan{
		{"svc-go121", "server", "GET", "Unset", map[string]string{"url.path": `"/chain"`, "http.route": "", "http.response.status_code": "200"}},
		{"svc-go121", "client", "GET", "Unset", map[string]string{"url.full": `"http://127.0.0.1:8084/echo/c5"`, "server.port": "8084", "http.response.status_code": "200"}},
		{"svc-go127", "server", "GET /echo/", "Unset", map[string]string{"url.path": `"/echo/c5"`, "http.route": `"/echo/"`, "server.port": "8084", "http.response.status_code": "200"}},
	},
}, {
	// Stripped Go 1.27 calls Go 1.21, which fails.
	name: "http-chain-go127-go121", about: "stripped Go 1.27 HTTP → Go 1.21 HTTP 503",
	url:   "http://127.0.0.1:8084/chain?to=http%3A%2F%2F127.0.0.1%3A8083%2Fstatus%2F503",
	trace: "66666666666666666666666666666666", parent: "6666666666666666",
	spans: []wantSpan{
		{"svc-go127", "server", "GET /chain", "Error", map[string]string{"url.path": `"/chain"`, "http.route": `"/chain"`, "http.response.status_code": "503"}},
		{"svc-go127", "client", "GET", "Error", map[string]string{"url.full": `"http://127.0.0.1:8083/status/503"`, "http.response.status_code": "503", "error.type": `"503"`}},
		{"svc-go121", "server", "GET", "Error", map[string]string{"url.path": `"/status/503"`, "http.route": "", "server.port": "8083", "http.response.status_code": "503"}},
	},
}}

// cellEntries builds the cells' targets (the plain httpserver is the
// guest's own) and returns their initramfs entries, the script among them.
func cellEntries(t *testing.T, dir string) []entry {
	t.Helper()
	var es []entry
	for _, c := range cellTargets {
		bin, err := harness.BuildApp(c.app, c.v, dir)
		if err != nil {
			t.Fatal(err)
		}
		es = append(es, entry{name: strings.TrimPrefix(c.bin, "/"), mode: modeFile | 0o755, data: readFile(t, bin)})
	}
	return append(es, entry{name: "cells.sh", mode: modeFile | 0o644, data: []byte(cellScript())})
}

// cellScript is sourced by the guest's /init before the agent starts: it
// starts the cells' targets, waits until each listens, leaves their pids in
// $cellpids for the agent's --pid and defines cells_drive, which /init
// calls once the agent is ready: it sends each cell's request, reports
// wget's status, and waits (bounded) until the agent has printed every
// span the cells expect, so the spans are not still pending (waiting for
// their caller) when the agent is stopped.
func cellScript() string {
	var b strings.Builder
	b.WriteString("cellpids=\n")
	for i, c := range cellTargets {
		fmt.Fprintf(&b, "OTEL_SERVICE_NAME=%s GODEBUG=httpmuxgo121=0 %s %s >/tmp/cell%d.log 2>&1 &\ncellpids=\"$cellpids --pid $!\"\n", c.service, c.bin, c.args, i)
	}
	for i := range cellTargets {
		fmt.Fprintf(&b, "i=0; until grep -q listening /tmp/cell%d.log; do i=$((i+1)); [ $i -gt 600 ] && break; sleep 0.1; done\n", i)
	}
	b.WriteString("cells_drive() {\n")
	want := 0
	var traces []string
	for _, c := range cells {
		fmt.Fprintf(&b, "\twget -q -O /dev/null --header \"traceparent: 00-%s-%s-01\" '%s'; echo \"cell: %s wget=$?\"\n", c.trace, c.parent, c.url, c.name)
		want += len(c.spans)
		traces = append(traces, "trace="+c.trace)
	}
	fmt.Fprintf(&b, "\ti=0; until [ \"$(grep -c -e %s /tmp/spans.log)\" -ge %d ]; do i=$((i+1)); [ $i -gt 200 ] && break; sleep 0.1; done\n",
		strings.Join(traces, " -e "), want)
	b.WriteString("\techo \"cell: spans after $i waits\"\n}\n")
	return b.String()
}

// hasCells reports whether a guest's initramfs holds the cells.
func hasCells(files []entry) bool {
	for _, e := range files {
		if e.name == "cells.sh" {
			return true
		}
	}
	return false
}

// printedSpan is one span line of the console exporter.
type printedSpan struct {
	service, name, kind, trace, span, parent, status string
	attrs                                            map[string]string
	line                                             string
}

var (
	spanHead = regexp.MustCompile(`^span service=("(?:[^"\\]|\\.)*") name=("(?:[^"\\]|\\.)*") kind=(\w+) trace=([0-9a-f]{32}) span=([0-9a-f]{16})(?: parent=([0-9a-f]{16}))? duration=\S+ status=(\w+)`)
	spanAttr = regexp.MustCompile(` ([^ =]+)=("(?:[^"\\]|\\.)*"|[^ "]+)`)
)

// parseSpan reads a console span line; ok is false for anything else.
func parseSpan(line string) (printedSpan, bool) {
	m := spanHead.FindStringSubmatch(line)
	if m == nil {
		return printedSpan{}, false
	}
	svc, err1 := strconv.Unquote(m[1])
	name, err2 := strconv.Unquote(m[2])
	if err1 != nil || err2 != nil {
		return printedSpan{}, false
	}
	s := printedSpan{service: svc, name: name, kind: m[3], trace: m[4], span: m[5], parent: m[6], status: m[7],
		attrs: map[string]string{}, line: line}
	for _, a := range spanAttr.FindAllStringSubmatch(line[len(m[0]):], -1) {
		s.attrs[a[1]] = a[2]
	}
	return s, true
}

// checkCells asserts every cell's spans, exactly: in the cell's trace,
// nothing more, each with its service, kind, name, status and attributes,
// and each the child of the span before it in the call chain.
func checkCells(errorf func(format string, args ...any), lines func(prefix string) []string, out string) {
	wget := map[string]string{}
	for _, l := range lines("cell: ") {
		if name, st, ok := strings.Cut(l, " wget="); ok {
			wget[name] = st
		}
	}
	known := map[string]bool{guestTrace: true}
	for _, c := range cells {
		known[c.trace] = true
	}
	byTrace := map[string][]printedSpan{}
	for _, l := range lines("out: ") {
		s, ok := parseSpan(l)
		if !ok || !known[s.trace] {
			errorf("span outside the requests sent: %s", l)
			continue
		}
		byTrace[s.trace] = append(byTrace[s.trace], s)
	}
	for _, c := range cells {
		wantWget := "1" // busybox wget: 1 for a 4xx/5xx answer
		if c.wgetOK {
			wantWget = "0"
		}
		if wget[c.name] != wantWget {
			errorf("%s: wget exit %q, want %s", c.name, wget[c.name], wantWget)
		}
		got := byTrace[c.trace]
		if len(got) != len(c.spans) {
			errorf("%s: %d spans in trace %s, want %d:\n%s", c.name, len(got), c.trace, len(c.spans), out)
			continue
		}
		parent := c.parent
		for i, w := range c.spans {
			var found []printedSpan
			for _, s := range got {
				if s.service == w.service && s.kind == w.kind && s.name == w.name {
					found = append(found, s)
				}
			}
			if len(found) != 1 {
				errorf("%s: %d spans %s %s %q, want 1 (spans: %v)", c.name, len(found), w.service, w.kind, w.name, got)
				break
			}
			s := found[0]
			if s.parent != parent {
				errorf("%s: span %d (%s %s %q) has parent %q, want %q\n%s", c.name, i, w.service, w.kind, w.name, s.parent, parent, s.line)
			}
			if s.status != w.status {
				errorf("%s: span %d status %s, want %s\n%s", c.name, i, s.status, w.status, s.line)
			}
			for k, v := range w.attrs {
				if s.attrs[k] != v {
					errorf("%s: span %d %s=%s, want %s\n%s", c.name, i, k, s.attrs[k], v, s.line)
				}
			}
			parent = s.span
		}
	}
}

// guestSlots bounds the guests that run at once: each is one emulated CPU,
// one host thread, and CI machines have two cores.
var guestSlots = make(chan struct{}, 2)

// guestTimeout is how long a guest may run: the cells' targets add three
// attaches, tens of seconds emulated when the host is busy.
func guestTimeout(files []entry) time.Duration {
	if hasCells(files) {
		return 320 * time.Second
	}
	return 170 * time.Second
}
