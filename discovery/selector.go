package discovery

import (
	"fmt"
	"path"
	"strings"
)

// Selector says which processes discovery instruments: those whose
// executable or systemd unit matches one of its globs.
type Selector struct {
	exe   []string
	units []string
}

// NewSelector checks the globs. exe globs match the executable's path as
// /proc/PID/exe resolves it (so a hard link or a copy elsewhere does not
// match); `*` stays within one path element, `**` spans any number of them,
// and a glob without a slash matches the base name. unit globs match the
// system unit, or a user manager's unit; one without a dot means a service
// ("nginx" is "nginx.service"), as systemctl reads it.
func NewSelector(exe, units []string) (*Selector, error) {
	s := &Selector{}
	for _, g := range exe {
		if g == "" {
			return nil, fmt.Errorf("empty executable glob")
		}
		if strings.Contains(g, "/") && !strings.HasPrefix(g, "/") && !strings.HasPrefix(g, "**/") {
			return nil, fmt.Errorf("executable glob %q: not an absolute path (executables are matched by their full path)", g)
		}
		if err := checkGlob(g); err != nil {
			return nil, fmt.Errorf("executable glob %q: %w", g, err)
		}
		s.exe = append(s.exe, g)
	}
	for _, g := range units {
		if g == "" {
			return nil, fmt.Errorf("empty systemd unit glob")
		}
		if strings.Contains(g, "/") {
			return nil, fmt.Errorf("systemd unit glob %q: unit names have no slash", g)
		}
		if !strings.Contains(g, ".") {
			g += ".service"
		}
		if _, err := path.Match(g, ""); err != nil {
			return nil, fmt.Errorf("systemd unit glob %q: %w", g, err)
		}
		s.units = append(s.units, g)
	}
	return s, nil
}

func checkGlob(g string) error {
	for _, el := range strings.Split(g, "/") {
		if _, err := path.Match(el, ""); err != nil {
			return err
		}
	}
	return nil
}

// Empty tells whether the selector has no rule at all.
func (s *Selector) Empty() bool { return s == nil || len(s.exe)+len(s.units) == 0 }

// NeedsUnits tells whether matching looks at systemd units (so the caller
// reads /proc/PID/cgroup only then).
func (s *Selector) NeedsUnits() bool { return s != nil && len(s.units) > 0 }

// Match returns the rule that selects a process with this executable path
// and these units (called only when the executable matched nothing and
// NeedsUnits), or ok false.
func (s *Selector) Match(exe string, units func() Units) (rule string, ok bool) {
	if s == nil {
		return "", false
	}
	for _, g := range s.exe {
		if MatchExe(g, exe) {
			return "exe=" + g, true
		}
	}
	if len(s.units) == 0 || units == nil {
		return "", false
	}
	u := units()
	for _, g := range s.units {
		for _, name := range []string{u.System, u.User} {
			if name == "" {
				continue
			}
			if ok, _ := path.Match(g, name); ok {
				return "systemd_unit=" + g, true
			}
		}
	}
	return "", false
}

// MatchExe tells whether the executable path exe matches glob (see
// NewSelector for the syntax). A malformed glob matches nothing.
func MatchExe(glob, exe string) bool {
	if !strings.Contains(glob, "/") {
		ok, _ := path.Match(glob, path.Base(exe))
		return ok
	}
	return matchElems(strings.Split(glob, "/"), strings.Split(exe, "/"))
}

// matchElems matches path elements, "**" standing for zero or more of them.
func matchElems(glob, name []string) bool {
	for len(glob) > 0 {
		if glob[0] == "**" {
			rest := glob[1:]
			for i := 0; i <= len(name); i++ {
				if matchElems(rest, name[i:]) {
					return true
				}
			}
			return false
		}
		if len(name) == 0 {
			return false
		}
		if ok, _ := path.Match(glob[0], name[0]); !ok {
			return false
		}
		glob, name = glob[1:], name[1:]
	}
	return len(name) == 0
}
