package offsets

import (
	"cmp"
	"regexp"
	"slices"
	"strconv"
)

// LookupModule returns the offset of field in the struct structName, whose
// package is provided by module, for binaries built with version of that
// module, such as ("google.golang.org/grpc", "v1.64.1",
// "google.golang.org/grpc.ClientConn", "target"). A release is looked up by
// its minor release: patch releases do not change the layout of these
// structs. A pseudo-version (google.golang.org/genproto has only those) is
// found when the table has it, or when the table has the versions just
// before and after it and they agree: a field moves once, when the package
// is regenerated, and does not move back. It reports false for fields the
// version does not have, for fields the table does not cover, for pre-releases
// and for versions it does not know, including any newer than its newest: a
// guessed offset would make a probe read the wrong memory.
func LookupModule(module, version, structName, field string) (uint64, bool) {
	versions, ok := modules[module]
	if !ok {
		return 0, false
	}
	f := Field{structName, field}
	if key, ok := releaseMinor(version); ok {
		off, ok := versions[key][f]
		return off, ok
	}
	base, ts, ok := pseudoVersion(version)
	if !ok {
		return 0, false
	}
	if t, ok := versions[version]; ok {
		off, ok := t[f]
		return off, ok
	}
	// The known pseudo-versions with the same base just before and after.
	var before, after string
	byTime := make(map[string]map[Field]uint64)
	for v, offs := range versions {
		b, t, ok := pseudoVersion(v)
		if !ok || b != base {
			continue
		}
		byTime[t] = offs
		if t < ts && (before == "" || t > before) {
			before = t
		}
		if t > ts && (after == "" || t < after) {
			after = t
		}
	}
	if before == "" || after == "" {
		return 0, false
	}
	lo, hi := byTime[before], byTime[after]
	offLo, okLo := lo[f]
	offHi, okHi := hi[f]
	if !okLo || !okHi || offLo != offHi {
		return 0, false
	}
	return offLo, true
}

// ModuleVersions returns the versions of module the table covers, oldest
// first: minor releases such as "v1.64", or pseudo-versions.
func ModuleVersions(module string) []string {
	vs := make([]string, 0, len(modules[module]))
	for v := range modules[module] {
		vs = append(vs, v)
	}
	slices.SortFunc(vs, compareKeys)
	return vs
}

// Modules returns the modules the table covers.
func Modules() []string {
	ms := make([]string, 0, len(modules))
	for m := range modules {
		ms = append(ms, m)
	}
	slices.Sort(ms)
	return ms
}

// ModuleFields returns the fields of module structs the table covers for
// the versions that have them.
func ModuleFields() []Field {
	return slices.Clone(moduleFields)
}

var (
	releaseRe = regexp.MustCompile(`^(v[0-9]+\.[0-9]+)\.[0-9]+$`)
	// A pseudo-version is vX.0.0-TIMESTAMP-REV, vX.Y.Z-PRE.0.TIMESTAMP-REV or
	// vX.Y.Z-0.TIMESTAMP-REV; its base is everything before the timestamp.
	pseudoRe = regexp.MustCompile(`^(v[0-9]+\.[0-9]+\.[0-9]+-(?:.*\.)?)([0-9]{14})-[0-9a-f]{12}$`)
)

// releaseMinor returns "vX.Y" for a release version vX.Y.Z.
func releaseMinor(v string) (string, bool) {
	m := releaseRe.FindStringSubmatch(v)
	if m == nil {
		return "", false
	}
	return m[1], true
}

// pseudoVersion splits a pseudo-version into its base and its timestamp.
func pseudoVersion(v string) (base, timestamp string, ok bool) {
	m := pseudoRe.FindStringSubmatch(v)
	if m == nil {
		return "", "", false
	}
	return m[1], m[2], true
}

// compareKeys orders table keys: minor releases numerically, then
// pseudo-versions by base and time.
func compareKeys(a, b string) int {
	ma, mb := minorRe.FindStringSubmatch(a), minorRe.FindStringSubmatch(b)
	switch {
	case ma != nil && mb != nil:
		return cmp.Or(cmp.Compare(atoi(ma[1]), atoi(mb[1])), cmp.Compare(atoi(ma[2]), atoi(mb[2])))
	case ma != nil:
		return -1
	case mb != nil:
		return 1
	}
	ba, ta, _ := pseudoVersion(a)
	bb, tb, _ := pseudoVersion(b)
	return cmp.Or(cmp.Compare(ba, bb), cmp.Compare(ta, tb), cmp.Compare(a, b))
}

var minorRe = regexp.MustCompile(`^v([0-9]+)\.([0-9]+)$`)

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}
