package discovery

import (
	"fmt"
	"os"
	"strings"
)

// Units are the systemd units a process runs in, from its cgroup path.
type Units struct {
	// System is the unit of the system manager: "nginx.service",
	// "docker-<id>.scope", "session-3.scope", "user@1000.service".
	System string
	// User is the unit of a user manager (under user@UID.service), e.g.
	// "app.service"; empty for system services.
	User string
}

// unitSuffixes are the unit types whose cgroups hold processes; slices
// only group them.
var unitSuffixes = []string{".service", ".scope", ".socket", ".mount", ".swap"}

func isUnit(name string) bool {
	for _, s := range unitSuffixes {
		if len(name) > len(s) && strings.HasSuffix(name, s) {
			return true
		}
	}
	return false
}

// UnitsOfPath reads the units from one cgroup path, e.g.
// "/system.slice/nginx.service" gives System "nginx.service". Cgroups a
// service creates below its own (Delegate=yes) still belong to it; a path
// with no unit in it (cgroupfs drivers: "/kubepods/besteffort/pod…/…",
// "/docker/<id>") gives none.
func UnitsOfPath(path string) Units {
	var u Units
	for _, c := range strings.Split(path, "/") {
		if !isUnit(c) {
			continue
		}
		switch {
		case u.System == "":
			u.System = c
			if !strings.HasPrefix(c, "user@") || !strings.HasSuffix(c, ".service") {
				return u
			}
		default:
			// The first unit under a user manager is the user's unit.
			u.User = c
			return u
		}
	}
	return u
}

// UnitsOf parses /proc/PID/cgroup (as given in data) and returns the
// process's systemd units. Lines are "ID:CONTROLLERS:PATH". The unified (v2)
// line "0::PATH" is systemd's own hierarchy on v2 and hybrid hosts; on v1
// hosts systemd keeps "N:name=systemd:PATH". Where neither names a unit
// (v1 without the systemd hierarchy, or a hybrid host whose unified tree is
// left empty), any controller hierarchy that does is used.
func UnitsOf(data string) Units {
	var unified, named, other Units
	for _, line := range strings.Split(data, "\n") {
		id, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		ctrls, path, ok := strings.Cut(rest, ":")
		if !ok {
			continue
		}
		u := UnitsOfPath(path)
		if u.System == "" {
			continue
		}
		switch {
		case id == "0" && ctrls == "":
			unified = u
		case ctrls == "name=systemd":
			named = u
		case other.System == "":
			other = u
		}
	}
	for _, u := range []Units{unified, named, other} {
		if u.System != "" {
			return u
		}
	}
	return Units{}
}

// UnitsOfPID reads the systemd units of a running process.
func UnitsOfPID(pid int) (Units, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return Units{}, err
	}
	return UnitsOf(string(b)), nil
}
