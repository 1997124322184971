package e2e

import (
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/golens/golens/probes/goruntime"
	"github.com/golens/golens/probes/nethttp"
	"github.com/golens/golens/test/harness"
)

// matrixGo are the toolchains the matrix builds the target with: the last
// patch release of every Go release golens supports.
var matrixGo = []string{"go1.21.13", "go1.22.12", "go1.23.12", "go1.24.13", "go1.25.14", "go1.26.8", "go1.27.3"}

// matrixTarget is one variant of the target, built and running.
type matrixTarget struct {
	v        harness.Variant
	service  string // its OTEL_SERVICE_NAME
	bin      string
	app      *harness.App
	requests int // sent to it
}

// TestGoMatrix instruments the target built by every supported Go release,
// each plain, stripped and PIE, with one agent attached to all of them at
// once, and checks every server span.
func TestGoMatrix(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the target with six Go toolchains")
	}
	var matrix []*matrixTarget
	for _, g := range matrixGo {
		for _, v := range []harness.Variant{{Go: g}, {Go: g, Stripped: true}, {Go: g, PIE: true}} {
			matrix = append(matrix, &matrixTarget{v: v, service: "matrix-" + v.String()})
		}
	}
	buildMatrix(t, matrix)

	recv, err := harness.NewReceiver()
	if err != nil {
		t.Fatal(err)
	}
	defer recv.Close()
	args := []string{"--otlp-endpoint", recv.Addr(), "--otlp-insecure"}
	for _, m := range matrix {
		m.app, err = harness.StartApp(m.bin, []string{"OTEL_SERVICE_NAME=" + m.service, "GODEBUG=httpmuxgo121=0"})
		if err != nil {
			t.Fatalf("%s: %v", m.v, err)
		}
		defer m.app.Stop()
		args = append(args, "--pid", fmt.Sprint(m.app.PID()))
	}

	start := time.Now()
	agent, err := harness.StartAgent(agentBin, nil, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer agent.Stop(5 * time.Second)
	if err := agent.WaitReady(60 * time.Second); err != nil {
		t.Fatal(err)
	}
	t.Logf("agent attached to %d targets in %s", len(matrix), time.Since(start).Round(time.Millisecond))
	// The agent runs as long as one target is attached: every one must be.
	if got := targets(t, agent); got != len(matrix) {
		t.Fatalf("golens_targets %d, want %d\n%s", got, len(matrix), agent.Log())
	}
	for _, bad := range []string{"cannot instrument", "probe refused"} {
		if strings.Contains(agent.Log(), bad) {
			t.Errorf("agent log says %q:\n%s", bad, agent.Log())
		}
	}

	// Every target is sent the whole request list; the subtests run in
	// parallel, so events of several targets are in flight together.
	var mu sync.Mutex
	total := 0
	traceIDs := make(map[string]string) // trace id -> variant/request
	t.Run("targets", func(t *testing.T) {
		for _, m := range matrix {
			t.Run(m.v.String(), func(t *testing.T) {
				t.Parallel()
				tag := strings.ReplaceAll(m.v.String(), ".", "_")
				reqs := serverRequests(tag)
				// Plus one chained request: /chain calls this same target's
				// /echo/<tag>-chain, two server requests and a client call.
				m.requests = len(reqs) + 2
				want := 3
				for _, r := range reqs {
					if !r.unsampled {
						want++
					}
				}
				mu.Lock()
				total += want
				mu.Unlock()
				base := "http://" + m.app.Addr
				sent := make(map[string]time.Time)
				for _, r := range reqs {
					sent[r.path] = time.Now()
					send(t, base, r)
				}
				chainTrace, chainParent := randHex(16), randHex(8)
				chainTarget := base + "/echo/" + tag + "-chain"
				creq, _ := http.NewRequest("GET", base+"/chain?to="+url.QueryEscape(chainTarget), nil)
				creq.Header.Set("traceparent", "00-"+chainTrace+"-"+chainParent+"-01")
				if resp, err := http.DefaultClient.Do(creq); err != nil {
					t.Errorf("chain: %v", err)
				} else {
					resp.Body.Close()
				}
				// On a timeout, go on: the checks below say which are missing.
				spans, err := waitSpans(recv, m.service, want, 20*time.Second)
				if err != nil {
					t.Errorf("%v\nagent log:\n%s", err, agent.Log())
				}
				checkMatrixChain(t, spans, chainTrace, chainParent, chainTarget)
				byPath := make(map[string][]harness.Span)
				for _, s := range spans {
					if s.TraceID == chainTrace {
						continue
					}
					p, _ := s.Attrs["url.path"].(string)
					byPath[p] = append(byPath[p], s)
				}
				for _, r := range reqs {
					got := byPath[r.path]
					if r.unsampled {
						if len(got) != 0 {
							t.Errorf("%s: %d spans for a request whose parent was not sampled", r.name, len(got))
						}
						continue
					}
					if len(got) != 1 {
						t.Errorf("%s: %d spans for %s, want exactly 1", r.name, len(got), r.path)
						continue
					}
					s := got[0]
					checkMatrixSpan(t, r, s, m, sent[r.path])
					mu.Lock()
					if prev, dup := traceIDs[s.TraceID]; dup {
						t.Errorf("%s: trace id %s already used by %s", r.name, s.TraceID, prev)
					}
					traceIDs[s.TraceID] = m.v.String() + "/" + r.name
					mu.Unlock()
				}
			})
		}
	})

	// Nothing more than one span per sampled request may arrive, and none
	// may be credited to a process that was not its source.
	time.Sleep(1500 * time.Millisecond)
	spans := recv.Spans()
	if len(spans) != total {
		t.Errorf("got %d spans for %d sampled requests", len(spans), total)
	}
	byService := make(map[string]*matrixTarget)
	for _, m := range matrix {
		byService[m.service] = m
	}
	for _, s := range spans {
		m, ok := byService[fmt.Sprint(s.Resource["service.name"])]
		if !ok || s.Resource["process.pid"] != int64(m.app.PID()) {
			t.Errorf("span %s %v from service %v pid %v: no such target", s.Name, s.Attrs["url.path"],
				s.Resource["service.name"], s.Resource["process.pid"])
		}
	}
	text, err := agent.Metrics()
	if err != nil {
		t.Fatal(err)
	}
	for series, want := range map[string]float64{
		`golens_targets`:                    float64(len(matrix)),
		`golens_events_lost_total`:          0,
		`golens_events_decode_errors_total`: 0,
		`golens_orphan_returns_total`:       0,
	} {
		if got := scrapeValue(t, text, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	// Each probe family an HTTP target needs is attached to every target,
	// by name: a family attached nowhere has no series to compare.
	for _, probe := range []string{nethttp.Probe.Name, goruntime.Probe.Name} {
		series := fmt.Sprintf("golens_probes_attached{probe=%q}", probe)
		if got := scrapeValue(t, text, series); got != float64(len(matrix)) {
			t.Errorf("%s = %v, want %d", series, got, len(matrix))
		}
	}
	for _, a := range probesAttachedRe.FindAllStringSubmatch(text, -1) {
		if a[1] != nethttp.Probe.Name && a[1] != goruntime.Probe.Name && a[2] != "0" {
			t.Errorf("golens_probes_attached{probe=%q} = %s: these targets do not use it", a[1], a[2])
		}
	}
	// Metrics count every request, sampled or not, under its own target.
	for _, m := range matrix {
		if got := requestsCounted(text, m.service); got != float64(m.requests) {
			t.Errorf("%s: go_app_http_server_requests_total sums to %v, want %d", m.service, got, m.requests)
		}
	}

	// Detaching from 18 targets must not hold up the exit: the README
	// promises 5 s.
	code, took, err := agent.Stop(5 * time.Second)
	if err != nil || code != 0 {
		t.Errorf("SIGTERM: exit code %d after %s (%v)\n%s", code, took, err, agent.Log())
	} else {
		t.Logf("agent detached from %d targets and exited in %s", len(matrix), took.Round(time.Millisecond))
	}
}

// checkMatrixSpan checks one span of target m: its own service name, then
// everything checkServerSpan checks of a span from the "checkout" service.
func checkMatrixSpan(t *testing.T, r request, s harness.Span, m *matrixTarget, sentAt time.Time) {
	t.Helper()
	if got := s.Resource["service.name"]; got != m.service {
		t.Errorf("%s: service.name %v, want %s (from the target's OTEL_SERVICE_NAME)", r.name, got, m.service)
	}
	// The toolchain the agent read from the binary's build info: exact, so
	// that the route check below applies to the right release.
	if got := s.Resource["process.runtime.version"]; got != m.v.Go {
		t.Errorf("%s: process.runtime.version %v, want %s", r.name, got, m.v.Go)
	}
	s.Resource = maps.Clone(s.Resource)
	s.Resource["service.name"] = "checkout"
	checkServerSpan(t, r, s, m.app.PID(), sentAt)
}

// waitSpans waits until n spans of service arrived and returns them.
func waitSpans(recv *harness.Receiver, service string, n int, timeout time.Duration) ([]harness.Span, error) {
	deadline := time.Now().Add(timeout)
	for {
		var got []harness.Span
		for _, s := range recv.Spans() {
			if s.Resource["service.name"] == service {
				got = append(got, s)
			}
		}
		if len(got) >= n {
			return got, nil
		}
		if time.Now().After(deadline) {
			return got, fmt.Errorf("%s: received %d spans, want %d", service, len(got), n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

var probesAttachedRe = regexp.MustCompile(`(?m)^golens_probes_attached\{probe="([^"]*)"\} (\S+)$`)

// requestsCounted sums go_app_http_server_requests_total over the series of
// one service.
func requestsCounted(text, service string) float64 {
	var n float64
	label := fmt.Sprintf(`service_name=%q`, service)
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, "go_app_http_server_requests_total{") && strings.Contains(line, label) {
			v, _ := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
			n += v
		}
	}
	return n
}

// buildMatrix builds every target, one release after the other. Toolchains
// are fetched one at a time in the same order, in the background, so that
// fetching the next one overlaps building with the previous one; those
// already at hand come first. Builds run one at a time: they are CPU-bound
// and the go command already compiles packages in parallel, so on 2 cores
// two concurrent builds take as long as the same two in a row.
func buildMatrix(t *testing.T, matrix []*matrixTarget) {
	start := time.Now()
	modCache := goEnv(t, "GOMODCACHE")
	local := goEnv(t, "GOVERSION")
	byGo := make(map[string][]*matrixTarget)
	var order []string
	for _, m := range matrix {
		if _, ok := byGo[m.v.Go]; !ok {
			order = append(order, m.v.Go)
		}
		byGo[m.v.Go] = append(byGo[m.v.Go], m)
	}
	at := func(g string) int { // 0: installed, 1: in the module cache, 2: to download
		switch {
		case g == local:
			return 0
		case exists(toolchainDir(modCache, g)):
			return 1
		}
		return 2
	}
	slices.SortStableFunc(order, func(a, b string) int { return at(a) - at(b) })

	type fetched struct {
		how  string
		took time.Duration
		err  error
	}
	ready := make(map[string]chan fetched, len(order))
	for _, g := range order {
		ready[g] = make(chan fetched, 1)
	}
	go func() {
		for _, g := range order {
			s := time.Now()
			how := [...]string{"installed", "cached", "downloaded"}[at(g)]
			err := fetchToolchain(g)
			ready[g] <- fetched{how, time.Since(s), err}
		}
	}()
	for _, g := range order {
		wait := time.Now()
		f := <-ready[g]
		if f.err != nil {
			t.Fatal(f.err)
		}
		t.Logf("toolchain %s: %s in %s (build waited %s for it)", g, f.how, f.took.Round(time.Millisecond),
			time.Since(wait).Round(time.Millisecond))
		// In this order: the stripped build reuses the plain build's packages.
		for _, m := range byGo[g] {
			s := time.Now()
			bin, err := harness.BuildApp("httpserver", m.v, workDir)
			if err != nil {
				t.Fatal(err)
			}
			m.bin = bin
			t.Logf("built %s in %s", m.v, time.Since(s).Round(time.Millisecond))
		}
	}
	t.Logf("built %d targets with %d toolchains in %s", len(matrix), len(order), time.Since(start).Round(time.Millisecond))
}

// toolchainDir is where GOTOOLCHAIN=g unpacks toolchain g.
func toolchainDir(modCache, g string) string {
	return filepath.Join(modCache, "golang.org", fmt.Sprintf("toolchain@v0.0.1-%s.%s-%s", g, runtime.GOOS, runtime.GOARCH))
}

// fetchToolchain makes sure toolchain g is at hand, fetching it as
// GOTOOLCHAIN=g does when it is not.
func fetchToolchain(g string) error {
	root, err := harness.RepoRoot()
	if err != nil {
		return err
	}
	cmd := exec.Command("go", "env", "GOVERSION")
	// The target's module asks for go 1.21, which every toolchain accepts.
	cmd.Dir = filepath.Join(root, "test", "apps", "httpserver")
	cmd.Env = append(os.Environ(), "GOTOOLCHAIN="+g)
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		return fmt.Errorf("fetch toolchain %s: %v\n%s", g, err, stderr)
	}
	if got := strings.TrimSpace(string(out)); got != g {
		return fmt.Errorf("fetch toolchain %s: GOTOOLCHAIN=%s runs %s", g, g, got)
	}
	return nil
}

func goEnv(t *testing.T, name string) string {
	t.Helper()
	out, err := exec.Command("go", "env", name).Output()
	if err != nil {
		t.Fatalf("go env %s: %v", name, err)
	}
	return strings.TrimSpace(string(out))
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// checkMatrixChain checks the chained request of one target: its /chain
// server span continues the sent trace, its client span is the child of
// that, and the server span of the call it made (to the same target, linked
// by connection on this node) is the child of the client span.
func checkMatrixChain(t *testing.T, spans []harness.Span, trace, parent, target string) {
	t.Helper()
	var srv, cli, callee []harness.Span
	for _, s := range spans {
		if s.TraceID != trace {
			continue
		}
		switch {
		case s.Kind == tracepb.Span_SPAN_KIND_CLIENT:
			cli = append(cli, s)
		case s.Attrs["url.path"] == "/chain":
			srv = append(srv, s)
		default:
			callee = append(callee, s)
		}
	}
	if len(srv) != 1 || len(cli) != 1 || len(callee) != 1 {
		t.Errorf("chain: %d server, %d client, %d callee spans in trace %s, want 1 each", len(srv), len(cli), len(callee), trace)
		return
	}
	if srv[0].ParentSpanID != parent {
		t.Errorf("chain: server parent %s, want %s", srv[0].ParentSpanID, parent)
	}
	if cli[0].ParentSpanID != srv[0].SpanID {
		t.Errorf("chain: client parent %s, want the server span %s", cli[0].ParentSpanID, srv[0].SpanID)
	}
	if callee[0].ParentSpanID != cli[0].SpanID {
		t.Errorf("chain: callee parent %s, want the client span %s", callee[0].ParentSpanID, cli[0].SpanID)
	}
	if cli[0].Attrs["url.full"] != target || cli[0].Attrs["http.response.status_code"] != int64(200) {
		t.Errorf("chain: client url.full %v status %v, want %s 200", cli[0].Attrs["url.full"], cli[0].Attrs["http.response.status_code"], target)
	}
	if callee[0].Start.Before(cli[0].Start) || callee[0].End.After(cli[0].End) {
		t.Errorf("chain: callee [%s, %s] not inside the call [%s, %s]", callee[0].Start, callee[0].End, cli[0].Start, cli[0].End)
	}
}
