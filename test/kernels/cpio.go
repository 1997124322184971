// Package kernels boots Debian's own kernels in QEMU and runs the real agent
// inside them: the kernels golens' users run, not only this machine's.
//
// A guest needs no disk image: the kernel package's vmlinuz boots an
// initramfs of busybox-static, the static agent and static Go targets, whose
// /init drives the run and prints what the test asserts on the serial
// console. Kernel packages come from Debian's archive by name (apt-get
// download) and are kept under $HOME/.cache/golens-test/kernels.
package kernels

import (
	"bufio"
	"fmt"
	"io"
	"os"
)

// entry is one file, directory or device node of an initramfs.
type entry struct {
	name         string
	mode         uint32 // type and permission bits, as in stat's st_mode
	data         []byte // file contents
	major, minor uint32 // of a device node
}

const (
	modeDir  = 0o040000
	modeFile = 0o100000
	modeChar = 0o020000
)

// writeInitramfs writes entries as a cpio archive in the "newc" format, the
// one the kernel unpacks into its initial root. It is not compressed: the
// guest would inflate it in emulated code, seconds per boot for the
// agent's and targets' ~70 MB, and the host would spend as long deflating.
func writeInitramfs(path string, entries []entry) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	for i, e := range append(entries, entry{name: "TRAILER!!!"}) {
		if err := writeEntry(w, uint32(i+1), e); err != nil {
			f.Close()
			return fmt.Errorf("initramfs %s: %w", e.name, err)
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func writeEntry(w io.Writer, ino uint32, e entry) error {
	nlink := 1
	if e.mode&modeDir != 0 {
		nlink = 2
	}
	name := e.name + "\x00"
	hdr := fmt.Sprintf("070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
		ino, e.mode, 0, 0, nlink, 0, len(e.data), 0, 0, e.major, e.minor, len(name), 0)
	if _, err := io.WriteString(w, hdr+name+pad(len(hdr)+len(name))); err != nil {
		return err
	}
	if _, err := w.Write(e.data); err != nil {
		return err
	}
	_, err := io.WriteString(w, pad(len(e.data)))
	return err
}

// pad is the zero bytes that bring n to a multiple of 4, as newc wants
// after every header+name and every file body.
func pad(n int) string {
	return "\x00\x00\x00"[:(4-n%4)%4]
}
