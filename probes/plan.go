package probes

// Planning: a Spec and a target's binary in, the attach points and the
// constants its programs are loaded with out. Pure: it reads the binary and
// nothing else, so it is tested without a kernel; attach.go loads and links
// what it plans, objects.go caches plans per binary file.

import (
	"errors"
	"fmt"
	"strings"

	"github.com/golens/golens/probes/inspect"
)

// point is one uprobe to attach: a program at a file offset.
type point struct {
	prog string
	addr uint64 // file offset of the function
	off  uint64 // offset inside it
}

// resolveHook finds where a hook's programs go and the constants it needs.
func resolveHook(h Hook, bin *inspect.Binary) ([]point, map[string]any, error) {
	fn, err := bin.Func(h.Symbol)
	if errors.Is(err, inspect.ErrNoSymbol) {
		return nil, nil, fmt.Errorf("%s: %w", h.Symbol, ErrNoFunction)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", h.Symbol, err) // a table that cannot be read
	}
	consts := make(map[string]any)
	for k, v := range h.Consts {
		consts[k] = v
	}
	if err := resolveFields(consts, h.Fields, bin); err != nil {
		return nil, nil, err
	}
	var pts []point
	if h.Entry != "" {
		// At the frame push rather than the first instruction: the kernel
		// emulates a push, while the stack-bound check before it would be
		// single-stepped (a second trap; measured +20 µs a request here).
		at, _ := bin.PushFrame(fn)
		pts = append(pts, point{h.Entry, fn.FileOffset, at})
	}
	if h.Return != "" {
		rets, err := bin.Returns(fn)
		if err != nil {
			return nil, nil, fmt.Errorf("find returns of %s: %w", h.Symbol, err)
		}
		if len(rets) == 0 {
			return nil, nil, fmt.Errorf("%s has no RET instruction", h.Symbol)
		}
		for _, r := range rets {
			pts = append(pts, point{h.Return, fn.FileOffset, r})
		}
	}
	return pts, consts, nil
}

// planSpec works out, from the binary, its load bias and the kernel's
// features, where one probe family's programs go and every constant they
// need. Optional hooks that cannot be attached are reported in skipped. It
// reads the binary only: no kernel, no process (plan_test.go).
func planSpec(s Spec, bin *inspect.Binary, im *image, features map[string]bool) (consts map[string]any, points []point, skipped []string, err error) {
	minor := goMinor(bin.GoVersion)
	if minor < s.MinGo {
		return nil, nil, nil, fmt.Errorf("%s is older than go1.%d: %w", bin.GoVersion, s.MinGo, ErrUnsupportedGo)
	}
	consts, err = resolveConstants(s, bin)
	if err != nil {
		return nil, nil, nil, err
	}
	// Resolve every hook before loading anything, so a refusal costs nothing.
	for _, h := range s.Hooks {
		if h.Feature != "" && !features[h.Feature] {
			continue
		}
		pts, hconsts, err := resolveHook(h, bin)
		if err != nil {
			if h.Optional && !errors.Is(err, inspect.ErrBadBinary) {
				skipped = append(skipped, fmt.Sprintf("%s: %v", h.Name, err))
				continue
			}
			return nil, nil, nil, err
		}
		for k, v := range hconsts {
			consts[k] = v
		}
		points = append(points, pts...)
	}
	if s.Tune != nil {
		for k, v := range s.Tune(bin) {
			consts[k] = v
		}
	}
	for f, fc := range s.FeatureConsts {
		if features[f] {
			for k, v := range fc {
				consts[k] = v
			}
		}
	}
	for _, g := range s.Globals {
		addr, ok := bin.DataSymbol(g.Symbol)
		if !ok {
			skipped = append(skipped, fmt.Sprintf("%s: no symbol table", g.Symbol))
			continue
		}
		off, err := fieldOffset(bin, g.Field.Struct, g.Field.Field)
		if err != nil {
			skipped = append(skipped, fmt.Sprintf("%s: %v", g.Symbol, err))
			continue
		}
		if im.biasErr != nil {
			skipped = append(skipped, fmt.Sprintf("%s: %v", g.Symbol, im.biasErr))
			continue
		}
		consts[g.AddrConst] = addr + im.bias
		consts[g.Field.Const] = off
	}
	for _, ta := range s.Types {
		addr, ok := bin.ItabType(ta.Type, ta.Iface)
		if !ok || im.biasErr != nil {
			continue // 0: unknown, which the programs are written for
		}
		consts[ta.Const] = addr + im.bias
	}
	for _, fa := range s.Funcs {
		fn, err := bin.Func(fa.Symbol)
		if err != nil || im.biasErr != nil {
			continue // 0: unknown, which the programs are written for
		}
		consts[fa.Const] = fn.Addr + im.bias
	}
	return consts, points, skipped, nil
}

// goMinor returns 23 for "go1.23.4"; 0 when unknown. A development build is
// taken as the newest release.
func goMinor(v string) int {
	if strings.HasPrefix(v, "devel") {
		return 1 << 10
	}
	rest, ok := strings.CutPrefix(v, "go1.")
	if !ok {
		return 0
	}
	n := 0
	for _, c := range rest {
		if c < '0' || c > '9' {
			break
		}
		n = n*10 + int(c-'0')
	}
	return n
}
