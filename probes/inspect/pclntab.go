package inspect

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"unsafe"
)

// pclnFunc is one function of the runtime's function table: its entry and
// the entry of the function after it.
type pclnFunc struct {
	entry, end uint64
}

// The head of the function table (runtime.pcHeader), the same from Go 1.18
// on: magic uint32, pad1, pad2, minLC, ptrSize uint8, then nfunc, nfiles,
// an unused word, and the offsets, from the header, of the name table, cu
// table, file table, pc table and function table: one word each.
const (
	pcNfunc      = 8
	pcNameOffset = 8 + 3*8
	pcPclnOffset = 8 + 7*8
	pcHeaderSize = 8 + 8*8
)

// parsePclntab indexes the functions of a .gopclntab by name, with entries
// at text plus their offsets. Every size and offset in data is checked
// against data before it is used: a crafted table cannot make it allocate
// more than a small multiple of len(data), read outside data or loop
// without end.
//
// At the function table's offset there are nfunc pairs {entry offset,
// offset of the function's _func from the table}, then the end offset of
// the last function; a _func starts with its entry offset (uint32) and the
// offset of its name in the name table (int32); names end with a NUL.
func parsePclntab(data []byte, text uint64, arch string) (map[string]pclnFunc, error) {
	if len(data) < pcHeaderSize {
		return nil, fmt.Errorf("%w: function table of %d bytes, shorter than its header", ErrBadBinary, len(data))
	}
	if h := pclntabHeader[arch]; len(h) < 2 || !bytes.Equal(data[:8], h[0]) && !bytes.Equal(data[:8], h[1]) {
		return nil, fmt.Errorf("%w: function table header % x is not Go 1.18+ for %s", ErrBadBinary, data[:8], arch)
	}
	le := binary.LittleEndian
	size := uint64(len(data))
	nfunc := le.Uint64(data[pcNfunc:])
	names := le.Uint64(data[pcNameOffset:])
	ftab := le.Uint64(data[pcPclnOffset:])
	if names >= size || ftab >= size {
		return nil, fmt.Errorf("%w: function table offsets (names %#x, functions %#x) past its %d bytes", ErrBadBinary, names, ftab, size)
	}
	// nfunc pairs and one more word of 4 bytes each, all inside data:
	// what bounds the index built below.
	if nfunc > (size-ftab)/8 || ftab+nfunc*8+4 > size {
		return nil, fmt.Errorf("%w: function table claims %d functions, more than its %d bytes hold", ErrBadBinary, nfunc, size)
	}
	tab := data[ftab:]
	nameTab := data[names:]
	// Not sized by nfunc: entries sharing a name share an entry. Names are
	// not copied but point into data, which the index keeps alive: names
	// overlapping in the table cannot multiply its size.
	funcs := make(map[string]pclnFunc)
	prev := uint64(0)
	for i := uint64(0); i < nfunc; i++ {
		entry := uint64(le.Uint32(tab[8*i:]))
		funcOff := uint64(le.Uint32(tab[8*i+4:]))
		end := uint64(le.Uint32(tab[8*i+8:]))
		if entry < prev || end < entry {
			return nil, fmt.Errorf("%w: function %d of the table is out of order", ErrBadBinary, i)
		}
		prev = entry
		if funcOff+8 > uint64(len(tab)) {
			return nil, fmt.Errorf("%w: function %d of the table points past it", ErrBadBinary, i)
		}
		nameOff := int64(int32(le.Uint32(tab[funcOff+4:])))
		if nameOff < 0 || uint64(nameOff) >= uint64(len(nameTab)) {
			return nil, fmt.Errorf("%w: name of function %d of the table points past it", ErrBadBinary, i)
		}
		name := nameTab[nameOff:]
		n := bytes.IndexByte(name, 0)
		if n < 0 {
			return nil, fmt.Errorf("%w: name of function %d of the table does not end", ErrBadBinary, i)
		}
		var fname string
		if n > 0 {
			fname = unsafe.String(&name[0], n)
		}
		if _, dup := funcs[fname]; !dup {
			funcs[fname] = pclnFunc{entry: text + entry, end: text + end}
		}
	}
	return funcs, nil
}
