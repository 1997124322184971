package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golens/golens/test/harness"
)

// What README's flag table promises for the span export, through the agent
// binary and a real OTLP/gRPC receiver: TLS verified against a given CA,
// mutual TLS, headers, gzip as the receiver sees it on the wire, every
// OTEL_EXPORTER_OTLP_* variable golens reads, and the precedence flags >
// environment > config file.
func TestOTLPExportOptions(t *testing.T) {
	bin := buildApp(t, "httpserver", harness.Variant{})
	app, err := harness.StartApp(bin, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer app.Stop()
	dir := t.TempDir()
	pki, err := harness.NewPKI(dir)
	if err != nil {
		t.Fatal(err)
	}
	tlsRecv, err := harness.NewReceiverWith(harness.ReceiverOptions{TLS: pki.ServerTLS(false)})
	if err != nil {
		t.Fatal(err)
	}
	defer tlsRecv.Close()
	mtlsRecv, err := harness.NewReceiverWith(harness.ReceiverOptions{TLS: pki.ServerTLS(true)})
	if err != nil {
		t.Fatal(err)
	}
	defer mtlsRecv.Close()
	plain, err := harness.NewReceiver()
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	dead, _ := harness.FreeAddr() // nothing listens there
	deadFile := filepath.Join(dir, "dead.yaml")
	os.WriteFile(deadFile, []byte("otlp_endpoint: "+dead+"\notlp_insecure: true\n"), 0o644)

	pid := fmt.Sprint(app.PID())
	for _, c := range []struct {
		name    string
		recv    *harness.Receiver // where the span must arrive; nil: nowhere
		env     []string
		args    []string
		headers map[string]string // the receiver must see these
		gzip    bool
	}{
		{
			name: "TLS, CA, gzip and headers from flags",
			recv: tlsRecv,
			args: []string{"--otlp-endpoint", tlsRecv.Addr(), "--otlp-ca-file", pki.CAFile,
				"--otlp-compression", "gzip", "--otlp-header", "x-tenant=shop", "--otlp-header", "authorization=Bearer t0k"},
			headers: map[string]string{"x-tenant": "shop", "authorization": "Bearer t0k"},
			gzip:    true,
		},
		{
			name: "TLS, CA, gzip, headers and timeout from OTEL_ variables",
			recv: tlsRecv,
			env: []string{"OTEL_EXPORTER_OTLP_ENDPOINT=https://" + tlsRecv.Addr(), "OTEL_EXPORTER_OTLP_CERTIFICATE=" + pki.CAFile,
				"OTEL_EXPORTER_OTLP_COMPRESSION=gzip", "OTEL_EXPORTER_OTLP_HEADERS=x-tenant=env, x-team=pay", "OTEL_EXPORTER_OTLP_TIMEOUT=5000"},
			headers: map[string]string{"x-tenant": "env", "x-team": "pay"},
			gzip:    true,
		},
		{
			name: "a CA that did not sign the collector's certificate",
			args: []string{"--otlp-endpoint", tlsRecv.Addr(), "--otlp-ca-file", pki.OtherCAFile},
		},
		{
			name: "mutual TLS from flags",
			recv: mtlsRecv,
			args: []string{"--otlp-endpoint", mtlsRecv.Addr(), "--otlp-ca-file", pki.CAFile,
				"--otlp-client-cert", pki.ClientCert, "--otlp-client-key", pki.ClientKey},
		},
		{
			name: "mutual TLS from the traces-specific OTEL_ variables",
			recv: mtlsRecv,
			env: []string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=https://" + mtlsRecv.Addr(), "OTEL_EXPORTER_OTLP_ENDPOINT=http://" + dead,
				"OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE=" + pki.CAFile,
				"OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE=" + pki.ClientCert, "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY=" + pki.ClientKey},
		},
		{
			name: "mutual TLS without a client certificate",
			args: []string{"--otlp-endpoint", mtlsRecv.Addr(), "--otlp-ca-file", pki.CAFile},
		},
		{
			name: "the flag's endpoint wins over the environment's",
			recv: plain,
			env:  []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://" + dead},
			args: []string{"--otlp-endpoint", plain.Addr(), "--otlp-insecure"},
		},
		{
			name: "the environment wins over the config file",
			recv: plain,
			env:  []string{"OTEL_EXPORTER_OTLP_ENDPOINT=" + plain.Addr(), "OTEL_EXPORTER_OTLP_INSECURE=true"},
			args: []string{"--config", deadFile},
		},
		{
			name: "the config file's endpoint",
			args: []string{"--config", deadFile},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			recvs := []*harness.Receiver{tlsRecv, mtlsRecv, plain}
			before := map[*harness.Receiver]int{}
			exports := map[*harness.Receiver]int{}
			for _, r := range recvs {
				before[r], exports[r] = len(r.Spans()), len(r.Exports())
			}
			agent, err := harness.StartAgentEnv(agentBin, c.env, nil, append([]string{"--pid", pid}, c.args...)...)
			if err != nil {
				t.Fatal(err)
			}
			defer agent.Stop(5 * time.Second)
			if err := agent.WaitReady(20 * time.Second); err != nil {
				t.Fatal(err)
			}
			path := "/echo/" + randHex(4)
			get(t, app.Addr, path)
			if c.recv == nil {
				// Nowhere to go: the failed export is counted, nothing arrives.
				waitMetric(t, agent, "golens_spans_failed_total", 1, 15*time.Second)
			} else {
				waitPath(t, c.recv, path)
			}
			for _, r := range recvs {
				got := r.Spans()[before[r]:]
				n := 0
				for _, s := range got {
					if s.Attrs["url.path"] == path {
						n++
					}
				}
				if want := map[bool]int{true: 1}[r == c.recv]; n != want {
					t.Errorf("%d spans of %s at a receiver, want %d", n, path, want)
				}
			}
			if c.recv == nil {
				return
			}
			for _, ex := range c.recv.Exports()[exports[c.recv]:] {
				for k, v := range c.headers {
					if got := ex.Headers.Get(k); len(got) != 1 || got[0] != v {
						t.Errorf("header %s: %q, want %q", k, got, v)
					}
				}
				if got := ex.Compression == "gzip"; got != c.gzip {
					t.Errorf("compression %q on the wire, want gzip %v", ex.Compression, c.gzip)
				}
				if c.gzip && ex.WireBytes >= ex.Bytes {
					t.Errorf("gzip: %d bytes on the wire for %d", ex.WireBytes, ex.Bytes)
				}
			}
		})
	}
}

// OTEL_TRACES_EXPORTER=console prints spans even with an endpoint set.
func TestOTLPExporterEnvConsole(t *testing.T) {
	bin := buildApp(t, "httpserver", harness.Variant{})
	app, err := harness.StartApp(bin, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer app.Stop()
	recv, err := harness.NewReceiver()
	if err != nil {
		t.Fatal(err)
	}
	defer recv.Close()
	var out lockedBuffer
	agent, err := harness.StartAgentEnv(agentBin, []string{"OTEL_TRACES_EXPORTER=console", "OTEL_EXPORTER_OTLP_ENDPOINT=" + recv.Addr()}, &out,
		"--pid", fmt.Sprint(app.PID()), "--otlp-insecure")
	if err != nil {
		t.Fatal(err)
	}
	path := "/echo/" + randHex(4)
	if err := agent.WaitReady(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	get(t, app.Addr, path)
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), path) && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	agent.Stop(5 * time.Second)
	if !strings.Contains(out.String(), path) {
		t.Errorf("the console did not print the span of %s:\n%s", path, out.String())
	}
	if n := len(recv.Spans()); n != 0 {
		t.Errorf("%d spans went to the OTLP endpoint with OTEL_TRACES_EXPORTER=console", n)
	}
}

// waitMetric waits until the agent's /metrics has name (any labels summed)
// at least want.
func waitMetric(t *testing.T, agent *harness.Agent, name string, want float64, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var got float64
	for time.Now().Before(deadline) {
		text, err := agent.Metrics()
		if err == nil {
			if got = sumMetric(text, name); got >= want {
				return
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s = %v after %s, want ≥ %v\n%s", name, got, timeout, want, agent.Log())
}

// sumMetric adds up every series of name in an exposition text.
func sumMetric(text, name string) float64 {
	var sum float64
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(line, name) {
			continue
		}
		rest := line[len(name):]
		if rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		var v float64
		if _, err := fmt.Sscan(rest[strings.LastIndexByte(rest, ' ')+1:], &v); err == nil {
			sum += v
		}
	}
	return sum
}
