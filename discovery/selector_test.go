package discovery

import "testing"

func TestMatchExe(t *testing.T) {
	for _, tc := range []struct {
		glob, exe string
		want      bool
	}{
		{"/opt/app/bin/server", "/opt/app/bin/server", true},
		{"/opt/app/bin/*", "/opt/app/bin/server", true},
		{"/opt/app/bin/*", "/opt/app/bin/sub/server", false}, // * stays in one element
		{"/opt/*/bin/server", "/opt/app/bin/server", true},
		{"/opt/*/bin/server", "/srv/app/bin/server", false},
		{"/opt/**/server", "/opt/server", true}, // ** may be empty
		{"/opt/**/server", "/opt/a/b/c/server", true},
		{"/opt/**", "/opt/a/b", true},
		{"/opt/**/bin/*", "/opt/x/y/bin/svc", true},
		{"/opt/**/bin/*", "/opt/x/y/lib/svc", false},
		{"/tmp/sel/httpserver-*", "/tmp/sel/httpserver-go1.26.8", true},
		{"/tmp/sel/httpserver-*", "/tmp/other/httpserver-go1.26.8", false}, // a copy elsewhere
		{"/tmp/sel/httpserver-*", "/tmp/sel/linked", false},                // a hard link by another name
		{"/usr/bin/server?", "/usr/bin/server1", true},
		{"/usr/bin/server[0-9]", "/usr/bin/serverx", false},
		{"server*", "/anywhere/at/all/server-v2", true}, // no slash: base name
		{"server*", "/anywhere/servers/other", false},
		{"/a/b", "/a/b/c", false},
		{"/a/b/c", "/a/b", false},
		{"/a/[", "/a/[", false}, // malformed: matches nothing
		{"**/bin/server", "/usr/local/bin/server", true},
		{"/**/bin/server", "/usr/local/bin/server", true},
	} {
		if got := MatchExe(tc.glob, tc.exe); got != tc.want {
			t.Errorf("MatchExe(%q, %q) = %v, want %v", tc.glob, tc.exe, got, tc.want)
		}
	}
}

func TestNewSelector(t *testing.T) {
	for _, tc := range []struct {
		exe, units []string
	}{
		{exe: []string{"/a/["}},
		{exe: []string{""}},
		{exe: []string{"bin/server"}}, // relative: would never match
		{units: []string{"a/b.service"}},
		{units: []string{"[.service"}},
		{units: []string{""}},
	} {
		if _, err := NewSelector(tc.exe, tc.units); err == nil {
			t.Errorf("NewSelector(%q, %q): no error", tc.exe, tc.units)
		}
	}
	s, err := NewSelector(nil, nil)
	if err != nil || !s.Empty() {
		t.Errorf("no rules: %v %v", s, err)
	}
}

func TestSelectorMatch(t *testing.T) {
	s, err := NewSelector([]string{"/opt/*/bin/api"}, []string{"nginx", "pay-*.service", "cri-containerd-*.scope"})
	if err != nil {
		t.Fatal(err)
	}
	if !s.NeedsUnits() {
		t.Error("unit rules but NeedsUnits false")
	}
	units := func(u Units) func() Units { return func() Units { return u } }
	for _, tc := range []struct {
		exe   string
		units Units
		want  string
	}{
		{"/opt/x/bin/api", Units{}, "exe=/opt/*/bin/api"},
		{"/usr/sbin/nginx", Units{System: "nginx.service"}, "systemd_unit=nginx.service"}, // "nginx" means the service
		{"/usr/sbin/nginx", Units{System: "nginx.socket"}, ""},
		{"/srv/pay", Units{System: "pay-eu.service"}, "systemd_unit=pay-*.service"},
		{"/srv/pay", Units{System: "user@1000.service", User: "pay-dev.service"}, "systemd_unit=pay-*.service"},
		{"/app/server", Units{System: "cri-containerd-0123.scope"}, "systemd_unit=cri-containerd-*.scope"},
		{"/srv/other", Units{System: "other.service"}, ""},
		{"/srv/other", Units{}, ""},
	} {
		rule, ok := s.Match(tc.exe, units(tc.units))
		if rule != tc.want || ok != (tc.want != "") {
			t.Errorf("Match(%q, %+v) = %q %v, want %q", tc.exe, tc.units, rule, ok, tc.want)
		}
	}
	// The cgroup is not read when the executable decides, or when there are
	// no unit rules.
	exeOnly, _ := NewSelector([]string{"/opt/*/bin/api"}, nil)
	panicky := func() Units { panic("units read") }
	if _, ok := s.Match("/opt/x/bin/api", panicky); !ok {
		t.Error("no match")
	}
	if exeOnly.NeedsUnits() {
		t.Error("NeedsUnits without unit rules")
	}
	if _, ok := exeOnly.Match("/usr/bin/x", panicky); ok {
		t.Error("match")
	}
}
