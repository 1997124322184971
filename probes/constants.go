package probes

import (
	"errors"
	"fmt"
	"strings"

	"github.com/golens/golens/probes/inspect"
	"github.com/golens/golens/probes/offsets"
)

// goMapFields are the map header offsets go_map.h needs, per layout.
var (
	hmapFields = []Field{
		{Const: "off_hmap_b", Struct: "runtime.hmap", Field: "B"},
		{Const: "off_hmap_buckets", Struct: "runtime.hmap", Field: "buckets"},
		{Const: "off_hmap_oldbuckets", Struct: "runtime.hmap", Field: "oldbuckets"},
	}
	swissFields = []Field{
		{Const: "off_swiss_dirptr", Struct: "internal/runtime/maps.Map", Field: "dirPtr"},
		{Const: "off_swiss_dirlen", Struct: "internal/runtime/maps.Map", Field: "dirLen"},
	}
)

// SwissMaps tells whether the target's maps use the Swiss-table layout:
// the default from Go 1.24, unless built with GOEXPERIMENT=noswissmap
// (possible in 1.24 and 1.25 only).
func SwissMaps(b *inspect.Binary) bool {
	return goMinor(b.GoVersion) >= 24 && !strings.Contains(b.Settings["GOEXPERIMENT"], "noswissmap")
}

// fieldOffset finds one offset: DWARF first, then the generated tables. A
// struct of a module the binary was built with (grpc-go, genproto) is looked
// up by the version of that module, from the build info; any other (the
// standard library's, the runtime's) by the Go release. It never guesses:
// an unknown offset refuses the probe with ErrNoOffsets.
func fieldOffset(b *inspect.Binary, structName, field string) (uint64, error) {
	off, err := b.FieldOffset(structName, field)
	if err == nil {
		return off, nil
	}
	if !errors.Is(err, inspect.ErrNoDWARF) {
		return 0, fmt.Errorf("%s.%s in %s: %w: %v", structName, field, b.GoVersion, ErrNoOffsets, err)
	}
	if mod, ok := structModule(b, structName); ok {
		v := b.Modules[mod]
		if off, ok := offsets.LookupModule(mod, v, structName, field); ok {
			return off, nil
		}
		return 0, fmt.Errorf("%s.%s for %s %s (binary has no DWARF): %w", structName, field, mod, v, ErrNoOffsets)
	}
	if off, ok := offsets.Lookup(b.GoVersion, structName, field); ok {
		return off, nil
	}
	return 0, fmt.Errorf("%s.%s for %s (binary has no DWARF): %w", structName, field, b.GoVersion, ErrNoOffsets)
}

// structModule returns the module of b that provides the package of
// structName, such as "google.golang.org/grpc" for
// "google.golang.org/grpc/internal/transport.Stream": the longest module
// path that is the package path or a prefix of it. Standard-library
// structs have none.
func structModule(b *inspect.Binary, structName string) (string, bool) {
	slash := strings.LastIndexByte(structName, '/') + 1
	dot := strings.IndexByte(structName[slash:], '.')
	if dot < 0 {
		return "", false
	}
	pkg := structName[:slash+dot]
	best := ""
	for mod := range b.Modules {
		if (pkg == mod || strings.HasPrefix(pkg, mod+"/")) && len(mod) > len(best) {
			best = mod
		}
	}
	return best, best != ""
}

// resolveFields fills consts with the offsets of fields, skipping those
// newer than the target's Go release (their constant stays 0: "absent").
func resolveFields(consts map[string]any, fields []Field, b *inspect.Binary) error {
	minor := goMinor(b.GoVersion)
	for _, f := range fields {
		if minor < f.MinGo {
			continue
		}
		off, err := fieldOffset(b, f.Struct, f.Field)
		if err != nil {
			if f.Optional {
				continue
			}
			return err
		}
		consts[f.Const] = off
	}
	return nil
}

// resolveConstants computes the per-target constants a spec's shared
// programs need (its own fields and the Go map layout).
func resolveConstants(s Spec, b *inspect.Binary) (map[string]any, error) {
	consts := make(map[string]any)
	fields := s.Fields
	if s.ReadsGoMaps {
		swiss := SwissMaps(b)
		if swiss {
			consts["map_swiss"] = uint8(1)
			fields = append(append([]Field(nil), fields...), swissFields...)
			// table.groups is a groupsReference{data, lengthMask}: the C
			// code wants the offsets of those two words inside table.
			groups, err := fieldOffset(b, "internal/runtime/maps.table", "groups")
			if err != nil {
				return nil, err
			}
			data, err := fieldOffset(b, "internal/runtime/maps.groupsReference", "data")
			if err != nil {
				return nil, err
			}
			mask, err := fieldOffset(b, "internal/runtime/maps.groupsReference", "lengthMask")
			if err != nil {
				return nil, err
			}
			consts["off_table_groups_data"] = groups + data
			consts["off_table_groups_mask"] = groups + mask
		} else {
			consts["map_swiss"] = uint8(0)
			fields = append(append([]Field(nil), fields...), hmapFields...)
		}
	}
	if err := resolveFields(consts, fields, b); err != nil {
		return nil, err
	}
	return consts, nil
}
