package inspect_test

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"os"
	"testing"

	"github.com/golens/golens/probes/inspect"
)

// Sizes and counts a file gives are checked against the file: each
// crafted copy is refused with ErrBadBinary (at Open, or at the lookup
// that reads the part changed), quickly and without allocating what it
// claims.
func TestBadBinary(t *testing.T) {
	le := binary.LittleEndian
	for _, c := range []struct {
		name string
		from string
		edit func(t *testing.T, b []byte, ef *elf.File)
		ask  func(b *inspect.Binary) error
	}{
		{"function table claims 4 billion functions", "stripped", func(t *testing.T, b []byte, ef *elf.File) {
			off := ef.Section(".gopclntab").Offset
			copy(b[off+9:], []byte{0xff, 0xff, 0xff})
		}, lookup("net/http.serverHandler.ServeHTTP")},
		{"function table's name table past its end", "stripped", func(t *testing.T, b []byte, ef *elf.File) {
			s := ef.Section(".gopclntab")
			le.PutUint64(b[s.Offset+8+3*8:], s.Size+1)
		}, lookup("net/http.serverHandler.ServeHTTP")},
		{"symbol of 1 TiB", "plain", func(t *testing.T, b []byte, ef *elf.File) {
			syms, _ := ef.Symbols()
			for i, s := range syms {
				if s.Name == "net/http.serverHandler.ServeHTTP" {
					le.PutUint64(b[ef.Section(".symtab").Offset+uint64(i+1)*24+16:], 1<<40)
				}
			}
		}, func(b *inspect.Binary) error {
			f, err := b.Func("net/http.serverHandler.ServeHTTP")
			if err != nil {
				return err
			}
			_, err = b.Returns(f)
			return err
		}},
		{"section past the end of the file", "plain", func(t *testing.T, b []byte, ef *elf.File) {
			setSection(t, b, ef, ".symtab", func(sh []byte) { le.PutUint64(sh[0x20:], 1<<40) })
		}, nil},
		{"debug section claims 1 TiB", "plain", func(t *testing.T, b []byte, ef *elf.File) {
			s := ef.Section(".debug_info")
			if s.Flags&elf.SHF_COMPRESSED == 0 {
				t.Skip(".debug_info is not compressed")
			}
			le.PutUint64(b[s.Offset+8:], 1<<40) // Elf64_Chdr.ch_size
		}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			b, err := os.ReadFile(exes[c.from])
			if err != nil {
				t.Fatal(err)
			}
			ef, err := elf.NewFile(bytes.NewReader(b))
			if err != nil {
				t.Fatal(err)
			}
			c.edit(t, b, ef)
			bin, err := inspect.OpenReader(bytes.NewReader(b), int64(len(b)))
			if err == nil {
				defer bin.Close()
				if c.ask == nil {
					t.Fatal("opened")
				}
				err = c.ask(bin)
			}
			if !errors.Is(err, inspect.ErrBadBinary) {
				t.Fatalf("err %v, want ErrBadBinary", err)
			}
		})
	}
}

func lookup(name string) func(b *inspect.Binary) error {
	return func(b *inspect.Binary) error {
		_, err := b.Func(name)
		return err
	}
}

// setSection changes the section header of name in b.
func setSection(t *testing.T, b []byte, ef *elf.File, name string, edit func(sh []byte)) {
	t.Helper()
	le := binary.LittleEndian
	shoff, shentsize := le.Uint64(b[0x28:]), uint64(le.Uint16(b[0x3a:]))
	for i, s := range ef.Sections {
		if s.Name == name {
			edit(b[shoff+uint64(i)*shentsize:])
			return
		}
	}
	t.Fatalf("no section %s", name)
}
