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

// containerPrefixes are the scope names container runtimes give a
// container's cgroup with the systemd driver: containerd's CRI plugin,
// CRI-O, and Docker (also dockershim's and cri-dockerd's pods).
var containerPrefixes = []string{"cri-containerd-", "crio-", "docker-", "containerd-"}

// ContainerIDOfPath returns the container ID in one cgroup path, or "".
// Systemd driver: ".../kubepods-besteffort-pod<uid>.slice/cri-containerd-<id>.scope"
// (crio-<id>.scope, docker-<id>.scope); cgroupfs driver:
// "/kubepods/besteffort/pod<uid>/<id>" or "/docker/<id>". The innermost
// one counts: a container may create cgroups below its own, and a path
// seen from inside a cgroup namespace may start with "/..".
func ContainerIDOfPath(path string) string {
	els := strings.Split(path, "/")
	for i := len(els) - 1; i >= 0; i-- {
		el := els[i]
		if name, ok := strings.CutSuffix(el, ".scope"); ok {
			for _, p := range containerPrefixes {
				if id, ok := strings.CutPrefix(name, p); ok && isContainerID(id) {
					return id
				}
			}
			continue
		}
		if isContainerID(el) {
			return el
		}
	}
	return ""
}

// isContainerID tells whether s looks like a runtime's container ID: 64
// lowercase hex digits (containerd, CRI-O and Docker all use these).
func isContainerID(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// ContainerIDOf parses /proc/PID/cgroup (as given in data) and returns the
// ID of the container the process runs in, or "" for a process outside
// containers. The unified (v2) line is read first, then every v1
// hierarchy: on hybrid hosts the runtime may leave the v2 tree empty.
func ContainerIDOf(data string) string {
	var found string
	for _, line := range strings.Split(data, "\n") {
		id, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		ctrls, path, ok := strings.Cut(rest, ":")
		if !ok {
			continue
		}
		c := ContainerIDOfPath(path)
		if c == "" {
			continue
		}
		if id == "0" && ctrls == "" {
			return c
		}
		if found == "" {
			found = c
		}
	}
	return found
}

// ContainerIDOfPID reads the container ID of a running process ("" when it
// runs in none).
func ContainerIDOfPID(pid int) (string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return "", err
	}
	return ContainerIDOf(string(b)), nil
}
