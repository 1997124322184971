package e2e

import (
	"bytes"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golens/golens/test/harness"
)

// lockedBuffer collects what the agent prints, read while it writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// The console exporter prints one line per span whatever the path holds:
// an encoded newline followed by a forged span line stays inside the
// quoted url.path of its own span.
func TestConsoleOneLinePerSpan(t *testing.T) {
	app, err := harness.StartApp(buildApp(t, "httpserver", harness.Variant{}), []string{"OTEL_SERVICE_NAME=consolesvc"})
	if err != nil {
		t.Fatal(err)
	}
	defer app.Stop()
	var out lockedBuffer
	agent, err := harness.StartAgent(agentBin, &out, "--pid", fmt.Sprint(app.PID()), "--exporter", "console")
	if err != nil {
		t.Fatal(err)
	}
	defer agent.Stop(5 * time.Second)
	if err := agent.WaitReady(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	forged := "/echo/x\nspan service=forged name=\"GET\" kind=server url.path=/admin \"quoted\" \\ \x1b[2J"
	paths := []string{"/echo/console-before", forged, "/echo/console-after"}
	getStatus(t, app, "/echo/console-before", 200)
	getStatus(t, app, "/echo/x%0Aspan%20service=forged%20name=%22GET%22%20kind=server%20url.path=/admin%20%22quoted%22%20%5C%20%1B%5B2J", 200)
	getStatus(t, app, "/echo/console-after", 200)

	var lines []string
	deadline := time.Now().Add(10 * time.Second)
	for {
		lines = lines[:0]
		for _, l := range strings.Split(out.String(), "\n") {
			if strings.HasPrefix(l, "span ") {
				lines = append(lines, l)
			}
		}
		if len(lines) >= len(paths) || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // a forged line would come with its span
	all := strings.Split(strings.TrimRight(out.String(), "\n"), "\n")
	if len(all) != len(paths) {
		t.Fatalf("%d output lines for %d spans:\n%s", len(all), len(paths), out.String())
	}
	pathRE := regexp.MustCompile(` url\.path=("(?:[^"\\]|\\.)*")`)
	for i, l := range all {
		if !strings.HasPrefix(l, `span service="consolesvc" name="GET" kind=server `) || !strings.Contains(l, " http.response.status_code=200 ") {
			t.Errorf("line %d: %q", i, l)
		}
		m := pathRE.FindStringSubmatch(l)
		if m == nil {
			t.Errorf("line %d has no quoted url.path: %q", i, l)
			continue
		}
		p, err := strconv.Unquote(m[1])
		if err != nil || p != paths[i] {
			t.Errorf("line %d: url.path %q (%v), want %q", i, p, err, paths[i])
		}
	}
}
