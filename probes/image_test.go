package probes

import (
	"bytes"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"testing"

	"github.com/golens/golens/probes/inspect"
	"github.com/golens/golens/probes/inspect/inspecttest"
)

// The load bias maps a link-time address to where the running process has
// it: the code at the entry point, read from the process's memory at the
// biased address, is the code the file has there. PIE and fixed-address
// executables alike (both are linked at 0x400000).
func TestLoadBias(t *testing.T) {
	for _, pie := range []bool{false, true} {
		t.Run(fmt.Sprintf("pie=%v", pie), func(t *testing.T) {
			var opts inspecttest.Options
			if pie {
				opts.Flags = []string{"-buildmode=pie"}
			}
			exe, err := inspecttest.Build(t.TempDir(), opts)
			if err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(exe)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() { cmd.Process.Kill(); cmd.Wait() }()
			pid := cmd.Process.Pid
			bin, err := inspect.Open(exe)
			if err != nil {
				t.Fatal(err)
			}
			defer bin.Close()
			if bin.PIE != pie {
				t.Fatalf("PIE %v, want %v", bin.PIE, pie)
			}
			// Start returns once the exec succeeded: the image is there.
			im := readImage(pid, bin)
			if im.biasErr != nil {
				t.Fatal(im.biasErr)
			}
			if !pie && im.bias != 0 {
				t.Errorf("fixed-address executable: bias %#x, want 0", im.bias)
			}
			if pie && im.bias == 0 {
				t.Errorf("PIE: bias 0 (ASLR places a PIE elsewhere)")
			}
			ef, err := elf.Open(exe)
			if err != nil {
				t.Fatal(err)
			}
			defer ef.Close()
			want := make([]byte, 32)
			for _, p := range ef.Progs {
				if p.Type == elf.PT_LOAD && bin.Entry >= p.Vaddr && bin.Entry < p.Vaddr+p.Filesz {
					if _, err := p.ReadAt(want, int64(bin.Entry-p.Vaddr)); err != nil {
						t.Fatal(err)
					}
				}
			}
			mem, err := os.Open(fmt.Sprintf("/proc/%d/mem", pid))
			if err != nil {
				t.Fatal(err)
			}
			defer mem.Close()
			got := make([]byte, len(want))
			if _, err := mem.ReadAt(got, int64(bin.Entry+im.bias)); err != nil {
				t.Fatalf("read the process at %#x+%#x: %v", bin.Entry, im.bias, err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("code at the entry %#x+%#x: % x, want % x", bin.Entry, im.bias, got, want)
			}
		})
	}
}
