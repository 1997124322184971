package kernels

import (
	"fmt"
	"strings"
	"testing"
)

// guestOutput prints, as a guest would, every cell's spans, correctly
// chained, with edit applied to each span line (cell index, span index).
func guestOutput(edit func(c, i int, line string) string) string {
	var b strings.Builder
	for ci, c := range cells {
		st := "1"
		if c.wgetOK {
			st = "0"
		}
		fmt.Fprintf(&b, "cell: %s wget=%s\n", c.name, st)
		parent := c.parent
		for i, w := range c.spans {
			id := fmt.Sprintf("%04x%012x", ci+1, i+1)
			line := fmt.Sprintf("span service=%q name=%q kind=%s trace=%s span=%s parent=%s duration=1ms status=%s",
				w.service, w.name, w.kind, c.trace, id, parent, w.status)
			for k, v := range w.attrs {
				line += " " + k + "=" + v
			}
			if line = edit(ci, i, line); line != "" {
				b.WriteString("out: " + line + "\n")
			}
			parent = id
		}
	}
	return b.String()
}

func linesOf(out string) func(string) []string {
	return func(prefix string) []string {
		var ls []string
		for _, l := range strings.Split(out, "\n") {
			if r, ok := strings.CutPrefix(l, prefix); ok {
				ls = append(ls, r)
			}
		}
		return ls
	}
}

// The cells' check passes on what a correct guest prints and fails on each
// way a guest can be wrong: a leg under the wrong parent, a span missing,
// one too many, a wrong status or attribute, a failed request.
func TestCheckCells(t *testing.T) {
	first, last := len(cells[0].spans)-1, len(cells)-1
	for _, c := range []struct {
		name string
		edit func(c, i int, line string) string
		fail bool
	}{
		{"correct", func(_, _ int, l string) string { return l }, false},
		{"callee under the incoming parent", func(c, i int, l string) string {
			if c == 0 && i == first {
				return l[:strings.Index(l, " parent=")] + " parent=" + cells[0].parent + l[strings.Index(l, " duration="):]
			}
			return l
		}, true},
		{"callee in a trace of its own", func(c, i int, l string) string {
			if c == last && i == 2 {
				return strings.Replace(l, "trace="+cells[c].trace, "trace=0123456789abcdef0123456789abcdef", 1)
			}
			return l
		}, true},
		{"client span missing", func(c, i int, l string) string {
			if c == 1 && i == 1 {
				return ""
			}
			return l
		}, true},
		{"a span twice", func(c, i int, l string) string {
			if c == 2 && i == 0 {
				return l + "\nout: " + l
			}
			return l
		}, true},
		{"wrong status", func(c, i int, l string) string {
			if c == 1 && i == 2 {
				return strings.Replace(l, "status=Error", "status=Unset", 1)
			}
			return l
		}, true},
		{"wrong gRPC code", func(c, i int, l string) string {
			return strings.Replace(l, "rpc.grpc.status_code=13", "rpc.grpc.status_code=2", 1)
		}, true},
		{"request failed", func(_, _ int, l string) string { return l }, true},
	} {
		out := guestOutput(c.edit)
		if c.name == "request failed" {
			out = strings.Replace(out, cells[0].name+" wget=0", cells[0].name+" wget=1", 1)
		}
		var errs []string
		checkCells(func(f string, a ...any) { errs = append(errs, fmt.Sprintf(f, a...)) }, linesOf(out), out)
		if got := len(errs) > 0; got != c.fail {
			t.Errorf("%s: failed=%v, want %v: %q", c.name, got, c.fail, errs)
		}
	}
}
