package offsets

import "testing"

// A pseudo-version between two known ones is found only when they agree: a
// field that moved in between may have moved at any version there.
func TestLookupModuleBetween(t *testing.T) {
	saved := modules
	defer func() { modules = saved }()
	f := Field{"example.com/m/p.S", "F"}
	modules = map[string]map[string]map[Field]uint64{
		"example.com/m": {
			"v0.0.0-20200101000000-aaaaaaaaaaaa": {f: 40},
			"v0.0.0-20210101000000-bbbbbbbbbbbb": {f: 40},
			"v0.0.0-20220101000000-cccccccccccc": {f: 8},
			"v1.2":                               {f: 16},
		},
	}
	for _, tc := range []struct {
		version string
		off     uint64
		ok      bool
	}{
		{"v0.0.0-20200101000000-aaaaaaaaaaaa", 40, true},
		{"v0.0.0-20200601000000-dddddddddddd", 40, true},
		{"v0.0.0-20210601000000-dddddddddddd", 0, false}, // 40 before, 8 after
		{"v0.0.0-20220101000000-cccccccccccc", 8, true},
		{"v0.0.0-20230101000000-dddddddddddd", 0, false},   // newer than all
		{"v0.0.0-20190101000000-dddddddddddd", 0, false},   // older than all
		{"v0.0.1-0.20200601000000-dddddddddddd", 0, false}, // another base
		{"v0.0.0-20200601000000-dddddddddddd+incompatible", 0, false},
		{"v1.2.7", 16, true}, // a release, by its minor release
		{"v1.2.7-rc.1", 0, false},
	} {
		off, ok := LookupModule("example.com/m", tc.version, f.Struct, f.Name)
		if off != tc.off || ok != tc.ok {
			t.Errorf("LookupModule(%q) = %d, %v; want %d, %v", tc.version, off, ok, tc.off, tc.ok)
		}
	}
}
