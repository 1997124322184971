package e2e

import (
	"bytes"
	"compress/flate"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/golens/golens/test/harness"
)

// Crafted binaries cannot kill or bloat the agent. Each is a copy of the
// test server with bytes changed that the program does not use at run
// time, so it serves as before: the function table's count of functions
// (in a stripped copy, where the table is what golens reads), a symbol's
// size (1 TiB), and .debug_info replaced by a zlib stream that inflates
// to 1 GiB of zeros. The agent, watching them and a good target, refuses
// each (one log line, golens_probes_refused_total{reason="bad_binary"}),
// traces the good one's requests, and its peak RSS stays far below what
// any of them would have cost.
func TestCraftedBinaries(t *testing.T) {
	plain := buildApp(t, "httpserver", harness.Variant{})
	stripped := buildApp(t, "httpserver", harness.Variant{Stripped: true})
	dir := t.TempDir()
	crafted := map[string]string{
		"pclntab": craft(t, stripped, filepath.Join(dir, "pclntab"), craftPclntab),
		"symsize": craft(t, plain, filepath.Join(dir, "symsize"), craftSymbolSize),
		"dwarf":   craft(t, plain, filepath.Join(dir, "dwarf"), craftDWARFBomb),
	}
	recv, err := harness.NewReceiver()
	if err != nil {
		t.Fatal(err)
	}
	defer recv.Close()
	good, err := harness.StartApp(plain, []string{"OTEL_SERVICE_NAME=good"})
	if err != nil {
		t.Fatal(err)
	}
	defer good.Stop()
	args := []string{"--pid", strconv.Itoa(good.PID()), "--otlp-endpoint", recv.Addr(), "--otlp-insecure"}
	bad := map[string]*harness.App{}
	for name, exe := range crafted {
		app, err := harness.StartApp(exe, []string{"OTEL_SERVICE_NAME=" + name})
		if err != nil {
			t.Fatalf("crafted %s does not run: %v", name, err)
		}
		defer app.Stop()
		get(t, app.Addr, "/hello") // it serves as the original does
		bad[name] = app
		args = append(args, "--pid", strconv.Itoa(app.PID()))
	}
	agent, err := harness.StartAgent(agentBin, nil, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer agent.Stop(5 * time.Second)
	if err := agent.WaitReady(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	const n = 10
	for i := 0; i < n; i++ {
		get(t, good.Addr, fmt.Sprintf("/echo/good-%d", i))
	}
	for name, app := range bad {
		get(t, app.Addr, "/echo/"+name)
	}
	spans, err := recv.WaitFor(n, 10*time.Second)
	if err != nil {
		t.Fatalf("%v\n%s", err, agent.Log())
	}
	time.Sleep(500 * time.Millisecond)
	spans = recv.Spans()
	for _, s := range spans {
		if s.Resource["service.name"] != "good" {
			t.Errorf("span of a crafted target: %+v", s)
		}
	}
	if len(spans) != n {
		t.Errorf("%d spans, want the good target's %d", len(spans), n)
	}
	text, err := agent.Metrics()
	if err != nil {
		t.Fatal(err)
	}
	if got := scrapeValue(t, text, `golens_probes_refused_total{reason="bad_binary"}`); got != float64(len(bad)) {
		t.Errorf(`golens_probes_refused_total{reason="bad_binary"} %v, want %d`, got, len(bad))
	}
	if got := targets(t, agent); got != 1 {
		t.Errorf("golens_targets %d, want 1 (the good target)", got)
	}
	for name, app := range bad {
		re := regexp.MustCompile(fmt.Sprintf(`(?m)^.*msg="cannot instrument" pid=%d .*malformed binary.*$`, app.PID()))
		if got := len(re.FindAllString(agent.Log(), -1)); got != 1 {
			t.Errorf("%s: %d log lines refusing pid %d, want 1\n%s", name, got, app.PID(), agent.Log())
		}
	}
	// Peak resident memory: what attaching one small target costs, not
	// the gigabyte the DWARF claims nor a table of 4 billion functions.
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", agent.Cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`VmHWM:\s+(\d+) kB`).FindSubmatch(status)
	if m == nil {
		t.Fatalf("no VmHWM in\n%s", status)
	}
	hwm, _ := strconv.Atoi(string(m[1]))
	t.Logf("agent peak RSS %d MiB", hwm>>10)
	if hwm > 200<<10 {
		t.Errorf("agent peak RSS %d MiB, want under 200 MiB", hwm>>10)
	}
	if code, _, err := agent.Stop(5 * time.Second); err != nil || code != 0 {
		t.Errorf("agent stop: exit %d, %v\n%s", code, err, agent.Log())
	}
}

// craft copies the executable from to to and changes it with edit, which
// gets the file's bytes and its parsed ELF.
func craft(t *testing.T, from, to string, edit func(t *testing.T, b []byte, ef *elf.File) []byte) string {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	ef, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, edit(t, b, ef), 0o755); err != nil {
		t.Fatal(err)
	}
	return to
}

// craftPclntab sets bytes 1-3 of the function table's nfunc: about 4
// billion functions claimed. The runtime reads its own count from
// moduledata.
func craftPclntab(t *testing.T, b []byte, ef *elf.File) []byte {
	s := ef.Section(".gopclntab")
	if s == nil {
		t.Fatal("no .gopclntab")
	}
	for i := uint64(9); i < 12; i++ {
		b[s.Offset+i] = 0xff
	}
	return b
}

// craftSymbolSize gives the server's entry function a size of 1 TiB in
// .symtab.
func craftSymbolSize(t *testing.T, b []byte, ef *elf.File) []byte {
	syms, err := ef.Symbols()
	if err != nil {
		t.Fatal(err)
	}
	symtab := ef.Section(".symtab")
	for i, s := range syms {
		if s.Name == "net/http.serverHandler.ServeHTTP" {
			// Symbols() leaves out the null symbol at index 0.
			binary.LittleEndian.PutUint64(b[symtab.Offset+uint64(i+1)*24+16:], 1<<40)
			return b
		}
	}
	t.Fatal("no net/http.serverHandler.ServeHTTP in .symtab")
	return nil
}

// craftDWARFBomb appends a compressed section that inflates to 1 GiB of
// zeros and points .debug_info's section header at it.
func craftDWARFBomb(t *testing.T, b []byte, ef *elf.File) []byte {
	const size = 1 << 30
	le := binary.LittleEndian
	idx := -1
	for i, s := range ef.Sections {
		if s.Name == ".debug_info" {
			idx = i
		}
	}
	if idx < 0 {
		t.Fatal("no .debug_info")
	}
	sec := make([]byte, 24) // Elf64_Chdr: type, reserved, size, alignment
	le.PutUint32(sec, uint32(elf.COMPRESS_ZLIB))
	le.PutUint64(sec[8:], size)
	le.PutUint64(sec[16:], 1)
	sec = append(sec, zlibZeros(t, size)...)
	off := uint64(len(b))
	b = append(b, sec...)
	shoff, shentsize := le.Uint64(b[0x28:]), uint64(le.Uint16(b[0x3a:]))
	sh := b[shoff+uint64(idx)*shentsize:]
	le.PutUint64(sh[0x08:], le.Uint64(sh[0x08:])|uint64(elf.SHF_COMPRESSED))
	le.PutUint64(sh[0x18:], off)
	le.PutUint64(sh[0x20:], uint64(len(sec)))
	return b
}

// zlibZeros is a zlib stream of size zeros (a multiple of 1 MiB), made in
// a moment: one MiB compressed and flushed to a byte boundary decodes the
// same after any run of zeros, so it is repeated.
func zlibZeros(t *testing.T, size int) []byte {
	var buf bytes.Buffer
	fw, err := flate.NewWriter(&buf, flate.BestCompression)
	if err != nil {
		t.Fatal(err)
	}
	mib := make([]byte, 1<<20)
	fw.Write(mib[:1])
	fw.Flush()
	first := bytes.Clone(buf.Bytes())
	buf.Reset()
	fw.Write(mib)
	fw.Flush()
	block := buf.Bytes()
	out := append([]byte{0x78, 0xda}, first...)
	out = append(out, bytes.Repeat(block, size>>20)...)
	out = append(out, 0x03, 0x00) // a last, empty block
	// Adler-32 of n zeros: a stays 1, b adds 1 per byte.
	n := uint32((size + 1) % 65521)
	return binary.BigEndian.AppendUint32(out, n<<16|1)
}
