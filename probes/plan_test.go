package probes_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/golens/golens/probes"
	"github.com/golens/golens/probes/goruntime"
	"github.com/golens/golens/probes/inspect"
	"github.com/golens/golens/probes/inspect/inspecttest"
	"github.com/golens/golens/probes/nethttp"
)

// planOf builds the test server with opts and plans spec for it.
func planOf(t *testing.T, spec probes.Spec, opts inspecttest.Options, features map[string]bool) (*inspect.Binary, map[string]any, []probes.PlannedPoint, []string) {
	t.Helper()
	exe, err := inspecttest.Build(t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	bin, err := inspect.Open(exe)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bin.Close() })
	consts, pts, skipped, err := probes.Plan(spec, bin, features)
	if err != nil {
		t.Fatal(err)
	}
	return bin, consts, pts, skipped
}

// Planning reads the binary only: every hook's entry point is the frame
// push of its function and its return probes are exactly the function's
// RET instructions; the field offsets are the binary's own (DWARF); a
// hook behind a feature is planned only when the feature is asked for.
func TestPlanNetHTTP(t *testing.T) {
	bin, consts, pts, skipped := planOf(t, nethttp.Probe, inspecttest.Options{}, nil)
	planned := map[string][]probes.PlannedPoint{}
	for _, p := range pts {
		planned[p.Prog] = append(planned[p.Prog], p)
	}
	for _, h := range nethttp.Probe.Hooks {
		fn, err := bin.Func(h.Symbol)
		if h.Feature != "" {
			if h.Entry != "" && len(planned[h.Entry]) > 0 {
				t.Errorf("%s (feature %s, not asked for) planned", h.Name, h.Feature)
			}
			continue
		}
		if err != nil {
			if !h.Optional {
				t.Fatalf("%s: %v", h.Symbol, err)
			}
			continue // absent from this build: skipped below
		}
		if h.Entry != "" {
			at, _ := bin.PushFrame(fn)
			want := []probes.PlannedPoint{{h.Entry, fn.FileOffset, at}}
			if got := planned[h.Entry]; !slices.Equal(got, want) {
				t.Errorf("%s entry: planned %v, want %v", h.Name, got, want)
			}
		}
		if h.Return != "" {
			rets, err := bin.Returns(fn)
			if err != nil {
				t.Fatal(err)
			}
			var want []probes.PlannedPoint
			for _, r := range rets {
				want = append(want, probes.PlannedPoint{h.Return, fn.FileOffset, r})
			}
			if got := planned[h.Return]; len(want) == 0 || !slices.Equal(got, want) {
				t.Errorf("%s returns: planned %v, want %v", h.Name, got, want)
			}
		}
		for _, f := range h.Fields {
			off, err := bin.FieldOffset(f.Struct, f.Field)
			if err != nil {
				continue // a field this release lacks
			}
			if got := consts[f.Const]; got != off {
				t.Errorf("%s: %s = %v, want %s.%s at %d", h.Name, f.Const, got, f.Struct, f.Field, off)
			}
		}
	}
	for _, s := range skipped {
		t.Logf("skipped: %s", s)
	}

	// Asked for, the goroutine hook is planned too.
	_, _, withG, _ := planOf(t, nethttp.Probe, inspecttest.Options{}, map[string]bool{probes.FeatureGoroutines: true})
	if len(withG) <= len(pts) {
		t.Errorf("with %s: %d points, want more than the %d without", probes.FeatureGoroutines, len(withG), len(pts))
	}
}

// A stripped build has the same code as its twin with symbols: planned from
// .gopclntab and the offsets tables, it gets exactly the same points and
// constants, less the run-time addresses only a symbol table gives (type
// descriptors, runtime globals), which it leaves unset: unknown, never a
// guess.
func TestPlanStrippedSame(t *testing.T) {
	for _, spec := range []probes.Spec{nethttp.Probe, goruntime.Probe} {
		t.Run(spec.Name, func(t *testing.T) {
			_, c1, p1, _ := planOf(t, spec, inspecttest.Options{}, nil)
			_, c2, p2, _ := planOf(t, spec, inspecttest.Options{Flags: []string{"-ldflags=-s -w"}}, nil)
			if !slices.Equal(p1, p2) {
				t.Errorf("points differ:\n with symbols %v\n stripped     %v", p1, p2)
			}
			needSymtab := map[string]bool{}
			for _, ta := range spec.Types {
				needSymtab[ta.Const] = true
			}
			for _, g := range spec.Globals {
				needSymtab[g.AddrConst], needSymtab[g.Field.Const] = true, true
			}
			for _, fa := range spec.Funcs {
				needSymtab[fa.Const] = true
			}
			for k, v := range c1 {
				if w, ok := c2[k]; ok && w == v || !ok && needSymtab[k] {
					continue
				}
				t.Errorf("constant %s: %v with symbols, %v stripped", k, v, c2[k])
			}
			for k, v := range c2 {
				if _, ok := c1[k]; !ok {
					t.Errorf("constant %s = %v only when stripped", k, v)
				}
			}
		})
	}
}

// Refusals are decided by planning, before anything is loaded: a Go older
// than the family supports, a required function the binary lacks; an
// optional hook that cannot be planned is reported and left out.
func TestPlanRefusals(t *testing.T) {
	exe, err := inspecttest.Build(t.TempDir(), inspecttest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	bin, err := inspect.Open(exe)
	if err != nil {
		t.Fatal(err)
	}
	defer bin.Close()

	old := nethttp.Probe
	old.MinGo = 1000
	if _, _, _, err := probes.Plan(old, bin, nil); !errors.Is(err, probes.ErrUnsupportedGo) {
		t.Errorf("MinGo 1000: %v, want ErrUnsupportedGo", err)
	}

	missing := nethttp.Probe
	missing.Hooks = append(slices.Clone(nethttp.Probe.Hooks), probes.Hook{Name: "nope", Symbol: "main.noSuchFunction", Entry: nethttp.Probe.Hooks[0].Entry})
	if _, _, _, err := probes.Plan(missing, bin, nil); !errors.Is(err, probes.ErrNoFunction) {
		t.Errorf("required hook on a missing function: %v, want ErrNoFunction", err)
	}

	missing.Hooks[len(missing.Hooks)-1].Optional = true
	_, pts, skipped, err := probes.Plan(missing, bin, nil)
	if err != nil {
		t.Fatalf("optional hook on a missing function: %v", err)
	}
	_, want, _, _ := probes.Plan(nethttp.Probe, bin, nil)
	if !slices.Equal(pts, want) {
		t.Errorf("optional missing hook changed the plan: %v, want %v", pts, want)
	}
	if !slices.ContainsFunc(skipped, func(s string) bool { return len(s) > 5 && s[:5] == "nope:" }) {
		t.Errorf("skipped %q, want the missing optional hook listed", skipped)
	}
}
