package inspect

import "io"

// OpenReader reads a binary of size bytes from r, as Open reads a file.
func OpenReader(r io.ReaderAt, size int64) (*Binary, error) {
	return newBinary("input", r, size)
}

// ReadPclntab reports whether b has parsed its .gopclntab.
func ReadPclntab(b *Binary) bool { return b.pcln != nil || b.pclnErr != nil }
