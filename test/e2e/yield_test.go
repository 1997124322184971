package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golens/golens/test/harness"
)

// policies counts the scheduling policies of a process's threads
// (/proc/PID/task/TID/sched: 0 normal, 5 SCHED_IDLE).
func policies(t *testing.T, pid int) map[int]int {
	t.Helper()
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		t.Fatal(err)
	}
	out := map[int]int{}
	for _, task := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/sched", pid, task.Name()))
		if err != nil {
			continue // the thread ended
		}
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) == 3 && f[0] == "policy" {
				p, _ := strconv.Atoi(f[2])
				out[p]++
			}
		}
	}
	return out
}

// With --cpu-yield golens' threads run under SCHED_IDLE while it keeps up.
// When busy loops at normal priority take every CPU, golens starves, goes
// back to normal priority and loses nothing: every request served during
// the saturation is exported, no event lost in the ring, no span dropped.
// Once the loops end it yields again.
func TestCPUYield(t *testing.T) {
	recv, err := harness.NewReceiver()
	if err != nil {
		t.Fatal(err)
	}
	defer recv.Close()
	file := strategiesFile(t, keepAll)
	app, agent := startExport(t, recv, "--cpu-yield", "--sampling-strategies", file)
	pid := agent.Cmd.Process.Pid
	waitAllIdle(t, agent, pid, 15*time.Second)
	get(t, app.Addr, "/hello")
	if _, err := recv.WaitFor(1, 10*time.Second); err != nil {
		t.Fatalf("%v\n%s", err, agent.Log())
	}

	// Two busy loops per CPU at normal priority, while requests keep
	// coming (200/s): golens starves until it notices and goes back to
	// normal priority. Under SCHED_IDLE it may get no CPU for a while
	// before it can notice, so this waits for it, up to 30 s.
	var loops []*exec.Cmd
	for range 2 * runtime.NumCPU() {
		c := exec.Command("sh", "-c", "while :; do :; done")
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		loops = append(loops, c)
	}
	stopLoops := func() {
		for _, c := range loops {
			c.Process.Kill()
			c.Wait()
		}
		loops = nil
	}
	defer stopLoops()
	sent := make(chan int)
	stop := make(chan struct{})
	go func() {
		i := 0
		defer func() { sent <- i }()
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			resp, err := http.Get("http://" + app.Addr + fmt.Sprintf("/echo/busy-%d", i))
			if err != nil {
				continue // counted only when served
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			i++
		}
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		text, err := agent.Metrics() // a starving golens answers late: fine
		if err == nil && scrapeValue(t, text, `golens_cpu_policy_changes_total{policy="normal"}`) >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("with every CPU busy for 30 s golens never went back to normal priority\n%s", agent.Log())
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // requests served at normal priority too
	close(stop)
	n := <-sent
	stopLoops()

	spans, err := recv.WaitFor(1+n, 20*time.Second)
	if err != nil {
		t.Fatalf("%v: spans lost while golens yielded\n%s", err, agent.Log())
	}
	seen := map[string]bool{}
	for _, s := range spans {
		seen[fmt.Sprint(s.Attrs["url.path"])] = true
	}
	for i := range n {
		if p := fmt.Sprintf("/echo/busy-%d", i); !seen[p] {
			t.Errorf("no span for %s", p)
		}
	}
	text, _ := agent.Metrics()
	for _, series := range []string{"golens_events_lost_total", `golens_spans_dropped_total{reason="queue_full"}`} {
		if v := scrapeValue(t, text, series); v != 0 {
			t.Errorf("%s = %v, want 0", series, v)
		}
	}
	// Caught up: it yields again, every thread.
	waitAllIdle(t, agent, pid, 15*time.Second)
}

// waitAllIdle waits for golens to say it yields with every thread under
// SCHED_IDLE (5) at once: on a busy machine it may be behind for a while,
// at normal priority, which is what it should do.
func waitAllIdle(t *testing.T, agent *harness.Agent, pid int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		text, err := agent.Metrics()
		if err != nil {
			t.Fatal(err)
		}
		p := policies(t, pid)
		if scrapeValue(t, text, "golens_cpu_yield") == 1 && len(p) == 1 && p[5] > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("golens_cpu_yield %v, thread policies %v; want 1 and every thread SCHED_IDLE (5)\n%s",
				scrapeValue(t, text, "golens_cpu_yield"), p, agent.Log())
		}
		time.Sleep(100 * time.Millisecond)
	}
}
