package inspect

import (
	"debug/dwarf"
	"fmt"
	"strings"
)

// HasDWARF reports whether the binary carries DWARF debug information, that
// is, was not built with -ldflags=-w.
func (b *Binary) HasDWARF() bool {
	return b.elf.Section(".debug_info") != nil || b.elf.Section(".zdebug_info") != nil
}

// FieldOffset returns the byte offset of field in the struct type called
// structName, such as ("net/http.Request", "Method"). field may be a path
// through embedded-by-value structs, such as "groups.data". The error wraps
// ErrNoDWARF when the binary has no DWARF and ErrNoField when the struct or
// the field is not there.
func (b *Binary) FieldOffset(structName, field string) (uint64, error) {
	idx, err := b.structs()
	if err != nil {
		return 0, err
	}
	s, ok := idx.byName[structName]
	if !ok {
		return 0, fmt.Errorf("%s.%s in %s: no struct %s: %w", structName, field, b.Path, structName, ErrNoField)
	}
	var off uint64
	path := strings.Split(field, ".")
	for i, name := range path {
		m, ok := s.members[name]
		if !ok {
			return 0, fmt.Errorf("%s.%s in %s: %w", structName, field, b.Path, ErrNoField)
		}
		off += m.offset
		if i == len(path)-1 {
			break
		}
		if s, ok = idx.resolve(m.typ); !ok {
			return 0, fmt.Errorf("%s.%s in %s: %s is not a struct held by value", structName, field, b.Path, strings.Join(path[:i+1], "."))
		}
	}
	return off, nil
}

// StructSize returns the size in bytes of the struct type called name. The
// error wraps ErrNoDWARF when the binary has no DWARF and ErrNoField when the
// struct is not there.
func (b *Binary) StructSize(name string) (uint64, error) {
	idx, err := b.structs()
	if err != nil {
		return 0, err
	}
	s, ok := idx.byName[name]
	if !ok {
		return 0, fmt.Errorf("struct %s in %s: %w", name, b.Path, ErrNoField)
	}
	return s.size, nil
}

// structIndex holds every named struct type of a binary's DWARF. Walking the
// DWARF takes a good part of a second on a large binary, so it is done once,
// for all structs, on the first question.
type structIndex struct {
	byName   map[string]*structType
	byOffset map[dwarf.Offset]*structType
	typedefs map[dwarf.Offset]dwarf.Offset // typedef -> the type it names
}

type structType struct {
	size    uint64
	members map[string]member
}

type member struct {
	offset uint64
	typ    dwarf.Offset
}

// resolve follows typedefs from the type at off to a struct type.
func (idx *structIndex) resolve(off dwarf.Offset) (*structType, bool) {
	for range 16 {
		if s, ok := idx.byOffset[off]; ok {
			return s, true
		}
		next, ok := idx.typedefs[off]
		if !ok {
			return nil, false
		}
		off = next
	}
	return nil, false
}

func (b *Binary) structs() (*structIndex, error) {
	b.dwarfOnce.Do(func() {
		b.dwarf, b.dwarfErr = b.indexStructs()
	})
	return b.dwarf, b.dwarfErr
}

func (b *Binary) indexStructs() (idx *structIndex, err error) {
	defer recovered(&err, "read DWARF of "+b.Path)
	if !b.HasDWARF() {
		return nil, fmt.Errorf("read DWARF of %s: %w", b.Path, ErrNoDWARF)
	}
	d, err := b.elf.DWARF()
	if err != nil {
		return nil, fmt.Errorf("read DWARF of %s: %w", b.Path, err)
	}
	idx = &structIndex{
		byName:   make(map[string]*structType),
		byOffset: make(map[dwarf.Offset]*structType),
		typedefs: make(map[dwarf.Offset]dwarf.Offset),
	}
	r := d.Reader()
	for {
		e, err := r.Next()
		if err != nil {
			return nil, fmt.Errorf("read DWARF of %s: %w", b.Path, err)
		}
		if e == nil {
			return idx, nil
		}
		switch e.Tag {
		case dwarf.TagCompileUnit:
			// Go puts its types directly under compile units: descend.
		case dwarf.TagStructType:
			s, err := readStruct(r, e)
			if err != nil {
				return nil, fmt.Errorf("read DWARF of %s: %w", b.Path, err)
			}
			idx.byOffset[e.Offset] = s
			if name, ok := e.Val(dwarf.AttrName).(string); ok {
				if _, dup := idx.byName[name]; !dup {
					idx.byName[name] = s
				}
			}
		case dwarf.TagTypedef:
			if e.Children {
				r.SkipChildren()
			}
			if t, ok := e.Val(dwarf.AttrType).(dwarf.Offset); ok {
				idx.typedefs[e.Offset] = t
			}
		default:
			// Go puts no struct types inside functions, scopes or other
			// types: skipping their children keeps the walk short.
			if e.Children {
				r.SkipChildren()
			}
		}
	}
}

// readStruct reads the members of the struct type e, leaving r after it.
func readStruct(r *dwarf.Reader, e *dwarf.Entry) (*structType, error) {
	s := &structType{members: make(map[string]member)}
	if size, ok := e.Val(dwarf.AttrByteSize).(int64); ok {
		s.size = uint64(size)
	}
	if !e.Children {
		return s, nil
	}
	for {
		c, err := r.Next()
		if err != nil {
			return nil, err
		}
		if c == nil || c.Tag == 0 {
			return s, nil
		}
		if c.Tag == dwarf.TagMember {
			name, _ := c.Val(dwarf.AttrName).(string)
			loc, ok := memberLocation(c.Val(dwarf.AttrDataMemberLoc))
			if name != "" && ok {
				typ, _ := c.Val(dwarf.AttrType).(dwarf.Offset)
				s.members[name] = member{offset: loc, typ: typ}
			}
		}
		if c.Children {
			r.SkipChildren()
		}
	}
}

// memberLocation decodes DW_AT_data_member_location: Go writes a constant;
// older producers write a DW_OP_plus_uconst expression.
func memberLocation(v any) (uint64, bool) {
	switch v := v.(type) {
	case int64:
		return uint64(v), v >= 0
	case []byte:
		const opPlusUconst = 0x23
		if len(v) < 2 || v[0] != opPlusUconst {
			return 0, false
		}
		var n uint64
		var shift uint
		for _, c := range v[1:] {
			n |= uint64(c&0x7f) << shift
			if c&0x80 == 0 {
				return n, true
			}
			shift += 7
		}
	}
	return 0, false
}
