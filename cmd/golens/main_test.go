package main

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/golens/golens/agent"
)

// --inject-context takes on, off, auto and the booleans it took before;
// alone it means on; the config file takes the same words.
func TestInjectMode(t *testing.T) {
	for _, c := range []struct {
		args []string
		want agent.InjectMode
	}{
		{nil, agent.InjectOff},
		{[]string{"--inject-context"}, agent.InjectOn},
		{[]string{"--inject-context=auto"}, agent.InjectAuto},
		{[]string{"--inject-context=AUTO"}, agent.InjectAuto},
		{[]string{"--inject-context=on"}, agent.InjectOn},
		{[]string{"--inject-context=off"}, agent.InjectOff},
		{[]string{"--inject-context=true"}, agent.InjectOn},
		{[]string{"--inject-context=false"}, agent.InjectOff},
	} {
		cfg, err := parseConfig(append([]string{"--pid", "1"}, c.args...))
		if err != nil || cfg.InjectContext != c.want {
			t.Errorf("%v: %q, %v; want %q", c.args, cfg.InjectContext, err, c.want)
		}
	}
	if _, err := parseConfig([]string{"--pid", "1", "--inject-context=maybe"}); err == nil {
		t.Error("--inject-context=maybe accepted")
	}
	f := filepath.Join(t.TempDir(), "config.yaml")
	for _, c := range []struct {
		yaml string
		want agent.InjectMode
	}{{"auto", agent.InjectAuto}, {"true", agent.InjectOn}, {"false", agent.InjectOff}, {"on", agent.InjectOn}, {"off", agent.InjectOff}} {
		os.WriteFile(f, []byte("pids: [1]\ninject_context: "+c.yaml+"\n"), 0o644)
		cfg, err := parseConfig([]string{"--config", f})
		if err != nil || cfg.InjectContext != c.want {
			t.Errorf("inject_context: %s: %q, %v; want %q", c.yaml, cfg.InjectContext, err, c.want)
		}
		// The flag wins over the file.
		if cfg, err := parseConfig([]string{"--config", f, "--inject-context=off"}); err != nil || cfg.InjectContext != agent.InjectOff {
			t.Errorf("inject_context: %s, flag off: %q, %v", c.yaml, cfg.InjectContext, err)
		}
	}
	for _, bad := range []string{"maybe", "[on]"} {
		os.WriteFile(f, []byte("pids: [1]\ninject_context: "+bad+"\n"), 0o644)
		var u usageError
		if _, err := parseConfig([]string{"--config", f}); !errors.As(err, &u) {
			t.Errorf("inject_context: %s: %v, want a usage error", bad, err)
		}
	}
}
