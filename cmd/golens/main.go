// Command golens is the node agent: it attaches eBPF probes to running Go
// services and exports their spans and metrics. This package turns flags,
// the environment and a config file into an agent.Config, and signals and
// errors into exit statuses; package agent does the rest.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/golens/golens/agent"
)

// exitUsage (sysexits' EX_USAGE) is bad usage, or no --pid target that can
// be instrumented: restarting cannot fix it. Not 2, which is what the Go
// runtime exits with on a fatal error or an unrecovered panic, a crash a
// restart does fix.
const exitUsage = 64

// exitKernel (sysexits' EX_UNAVAILABLE) is a kernel that lacks a feature
// golens needs, or one --inject-context needs: restarting cannot fix it
// either, and an operator must tell it from bad usage.
const exitKernel = 69

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	done := make(chan int, 1)
	go func() { done <- run(ctx, os.Args[1:]) }()
	select {
	case code := <-done:
		os.Exit(code)
	case <-ctx.Done():
	}
	// Shutting down; a second signal means "now".
	stop()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	select {
	case code := <-done:
		os.Exit(code)
	case <-sig:
		slog.Warn("second signal: exiting without flushing")
		os.Exit(1)
	}
}

// run returns the exit status: 0 after a clean shutdown, exitUsage for bad
// usage or when no target could be instrumented, exitKernel when the kernel
// lacks what golens needs, 1 for other failures. The agent has logged why
// it failed; run adds nothing to that line.
func run(ctx context.Context, args []string) int {
	cfg, err := parseConfig(args)
	if errors.Is(err, errHelp) || errors.Is(err, errVersion) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "golens:", err)
		return exitUsage
	}
	log, err := newLogger(cfg.Config)
	if err != nil {
		fmt.Fprintln(os.Stderr, "golens:", err)
		return exitUsage
	}
	slog.SetDefault(log) // for main's last word on a second signal
	if n := cfg.ignoredRules; n > 0 && cfg.Discover.Active() {
		log.Warn("discover rules in the config file are off: pass --discover or set discover.enabled", "rules", n)
	}
	cfg.Log = log
	a, err := agent.New(cfg.Config)
	if err != nil {
		return exitCode(err)
	}
	defer a.Close()
	if err := a.Run(ctx); err != nil {
		return exitCode(err)
	}
	return 0
}

// exitCode is the exit status for an error of the agent.
func exitCode(err error) int {
	switch {
	case errors.Is(err, agent.ErrKernel):
		return exitKernel
	case errors.Is(err, agent.ErrUsage):
		return exitUsage
	}
	return 1
}

func newLogger(cfg agent.Config) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		return nil, fmt.Errorf("log level %q: want debug, info, warn or error", cfg.LogLevel)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch cfg.LogFormat {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("log format %q: want text or json", cfg.LogFormat)
}
