package e2e

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/golens/golens/test/harness"
)

// With --inject-context (alone, or =auto on this kernel, which can), A's
// requests to a service golens does not watch (as if on another node) carry
// a traceparent naming A's client span; an application's own traceparent is
// left alone; without the flag, nothing is added.
func TestInjectContext(t *testing.T) {
	for _, c := range []struct {
		name string
		args []string
	}{{"on", []string{"--inject-context"}}, {"auto", []string{"--inject-context=auto"}}, {"off", nil}} {
		inject := c.args != nil
		t.Run(c.name, func(t *testing.T) {
			s := startClientSetup(t, harness.Variant{}, c.args...) // B is not watched
			if want := fmt.Sprintf("inject_context=%v", inject); !strings.Contains(s.agent.Log(), want) {
				t.Errorf("start-up line lacks %s:\n%s", want, s.agent.Log())
			}
			last := func() string {
				resp, err := http.Get("http://" + s.b.Addr + "/last")
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				return string(b)
			}
			record := url.QueryEscape("http://" + s.b.Addr + "/record")

			for i := 0; i < 3; i++ {
				before := len(s.recv.Spans())
				tid, pid := randHex(16), randHex(8)
				s.get(t, "/chain?to="+record, "00-"+tid+"-"+pid+"-01", 200)
				got := last()
				if !inject {
					if got != "" {
						t.Errorf("without --inject-context B received traceparent %q", got)
					}
					continue
				}
				spans, err := s.recv.WaitFor(before+2, 10*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				var client *harness.Span
				for j := range spans[before:] {
					if sp := spans[before+j]; sp.Kind == tracepb.Span_SPAN_KIND_CLIENT && sp.TraceID == tid {
						client = &sp
					}
				}
				if client == nil {
					t.Fatalf("no client span in trace %s", tid)
				}
				if want := "00-" + tid + "-" + client.SpanID + "-01"; got != want {
					t.Errorf("B received traceparent %q, want %q (A's client span)", got, want)
				}
			}
			// The application's own header wins and is not doubled.
			own := "00-" + randHex(16) + "-" + randHex(8) + "-01"
			s.get(t, "/chain?to="+record+"&own="+url.QueryEscape(own), "", 200)
			if got := last(); got != own {
				t.Errorf("application traceparent %q arrived as %q", own, got)
			}
			if inject {
				text, err := s.agent.Metrics()
				if err != nil {
					t.Fatal(err)
				}
				if got := scrapeValue(t, text, "golens_context_injected_total"); got != 3 {
					t.Errorf("golens_context_injected_total %v, want 3", got)
				}
			}
		})
	}
}
