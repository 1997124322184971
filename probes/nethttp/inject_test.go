package nethttp

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// The socket programs alone, with no uprobe: the test process is the
// watched one, puts announcements into inject_pending itself, writes
// crafted bytes on connections to a local listener, and checks what the
// listener received and what was counted.

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("eBPF tests need root in CI")
		}
		t.Skip("needs root for eBPF")
	}
}

// sink accepts connections and hands over, per connection, every byte
// it received until the client closed its side.
type sink struct {
	ln  net.Listener
	got chan received
}

type received struct {
	from string // the client's address
	b    []byte
}

func newSink(t *testing.T) *sink {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &sink{ln: ln, got: make(chan received, 16)}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				b, _ := io.ReadAll(c)
				s.got <- received{c.RemoteAddr().String(), b}
			}()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return s
}

func (s *sink) dial(t *testing.T) *net.TCPConn {
	t.Helper()
	c, err := net.Dial("tcp4", s.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

// send writes each part with its own write (one sendmsg, one run of the
// sk_msg program each) and returns what the listener received.
func (s *sink) send(t *testing.T, c *net.TCPConn, parts ...[]byte) []byte {
	t.Helper()
	for _, p := range parts {
		if _, err := c.Write(p); err != nil {
			t.Fatal(err)
		}
		// Separate writes must stay separate messages: no corking here,
		// but give each its own syscall for sure.
		time.Sleep(2 * time.Millisecond)
	}
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	timeout := time.After(5 * time.Second)
	for {
		select {
		case r := <-s.got:
			if r.from == c.LocalAddr().String() {
				return r.b
			}
		case <-timeout:
			t.Fatal("listener received nothing")
			return nil
		}
	}
}

type ids struct {
	trace [16]byte
	span  [8]byte
	flags uint8
}

func newIDs(n byte) ids {
	var id ids
	for i := range id.trace {
		id.trace[i] = n<<4 | byte(i)
	}
	for i := range id.span {
		id.span[i] = 0xa0 | byte(i) ^ n
	}
	id.flags = n & 1
	return id
}

func (id ids) traceparent() string {
	return fmt.Sprintf("00-%s-%s-0%d", hex.EncodeToString(id.trace[:]), hex.EncodeToString(id.span[:]), id.flags&1)
}

// field is the HPACK bytes the program appends for id.
func (id ids) field() []byte {
	tp := id.traceparent()
	b := []byte{0x00, 11}
	b = append(b, "traceparent"...)
	b = append(b, byte(len(tp)))
	return append(b, tp...)
}

func tuple(a netip.AddrPort) ([16]byte, uint16) {
	return a.Addr().As16(), a.Port()
}

// announce puts an announcement for stream (0: HTTP/1.x) of c, as the
// client probe would.
func announce(t *testing.T, in *Injector, c *net.TCPConn, stream uint32, id ids, lineHash uint32) {
	t.Helper()
	var k injectInjectKey
	k.Pid = uint32(os.Getpid())
	k.Stream = stream
	k.Conn.LocalIp, k.Conn.LocalPort = tuple(c.LocalAddr().(*net.TCPAddr).AddrPort())
	k.Conn.RemoteIp, k.Conn.RemotePort = tuple(c.RemoteAddr().(*net.TCPAddr).AddrPort())
	v := injectInjectIds{TraceId: id.trace, SpanId: id.span, Flags: id.flags, LineHash: lineHash}
	if err := in.objs.InjectPending.Put(&k, &v); err != nil {
		t.Fatal(err)
	}
}

func pendingLen(t *testing.T, in *Injector) int {
	t.Helper()
	var k injectInjectKey
	var v injectInjectIds
	n := 0
	it := in.objs.InjectPending.Iterate()
	for it.Next(&k, &v) {
		n++
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	return n
}

func lineHash(line string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(line); i++ {
		h = (h ^ uint32(line[i])) * 16777619
	}
	return h
}

// frames builds HTTP/2 bytes with a real Framer and HPACK encoder; the
// encoder's dynamic table carries over between header blocks, as on a
// real connection.
type frames struct {
	buf bytes.Buffer
	fr  *http2.Framer
	enc *hpack.Encoder
	hb  bytes.Buffer
}

func newFrames() *frames {
	f := &frames{}
	f.fr = http2.NewFramer(&f.buf, nil)
	f.enc = hpack.NewEncoder(&f.hb)
	return f
}

func (f *frames) block(hdrs []hpack.HeaderField) []byte {
	f.hb.Reset()
	for _, h := range hdrs {
		f.enc.WriteField(h)
	}
	return append([]byte(nil), f.hb.Bytes()...)
}

// take returns the bytes written so far and starts anew.
func (f *frames) take() []byte {
	b := append([]byte(nil), f.buf.Bytes()...)
	f.buf.Reset()
	return b
}

func request(path string) []hpack.HeaderField {
	return []hpack.HeaderField{
		{Name: ":method", Value: "POST"}, {Name: ":scheme", Value: "http"},
		{Name: ":path", Value: path}, {Name: ":authority", Value: "svc:8080"},
		{Name: "content-type", Value: "application/grpc"}, {Name: "te", Value: "trailers"},
	}
}

// rawFrame is one frame's bytes: a 9-byte header then the payload.
func rawFrame(typ, flags uint8, stream uint32, payload []byte) []byte {
	n := len(payload)
	b := []byte{byte(n >> 16), byte(n >> 8), byte(n), typ, flags,
		byte(stream >> 24), byte(stream >> 16), byte(stream >> 8), byte(stream)}
	return append(b, payload...)
}

const preface = http2.ClientPreface

// decoded is what a peer's Framer and HPACK decoder make of the bytes.
type decoded struct {
	headers map[uint32][]hpack.HeaderField // stream -> header fields
	data    map[uint32][]byte
}

func decode(t *testing.T, b []byte) decoded {
	t.Helper()
	if !bytes.HasPrefix(b, []byte(preface)) {
		t.Fatalf("no client preface in %q", b[:min(len(b), 24)])
	}
	fr := http2.NewFramer(nil, bytes.NewReader(b[len(preface):]))
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	fr.MaxHeaderListSize = 1 << 20
	d := decoded{headers: map[uint32][]hpack.HeaderField{}, data: map[uint32][]byte{}}
	for {
		f, err := fr.ReadFrame()
		if errors.Is(err, io.EOF) {
			return d
		}
		if err != nil {
			t.Fatalf("peer cannot read the frames: %v", err)
		}
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			d.headers[f.StreamID] = append(d.headers[f.StreamID], f.Fields...)
		case *http2.DataFrame:
			d.data[f.StreamID] = append(d.data[f.StreamID], f.Data()...)
		}
	}
}

func startTestInjector(t *testing.T) *Injector {
	t.Helper()
	needRoot(t)
	in, err := startInjector(nil)
	if err != nil {
		if errors.Is(err, ebpf.ErrNotSupported) && os.Getenv("CI") == "" {
			t.Skip(err)
		}
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close() })
	if err := in.Add(os.Getpid()); err != nil {
		t.Fatal(err)
	}
	return in
}

// checkStats compares the counters with want (names not listed: 0) and
// returns the current counters as the next baseline.
func checkStats(t *testing.T, in *Injector, base, want map[string]uint64) map[string]uint64 {
	t.Helper()
	got := in.Stats()
	for _, s := range InjectStats {
		if d := got[s.Name] - base[s.Name]; d != want[s.Name] {
			t.Errorf("counter %s: %d, want %d", s.Name, d, want[s.Name])
		}
	}
	return got
}

func TestInjectHTTP2(t *testing.T) {
	in := startTestInjector(t)
	s := newSink(t)
	base := in.Stats()

	t.Run("headers", func(t *testing.T) {
		// SETTINGS, HEADERS of streams 1 (announced) and 3 (not), and a
		// DATA frame whose payload looks like a HEADERS frame of
		// announced stream 5 and a request line: only stream 1 changes.
		c := s.dial(t)
		f := newFrames()
		f.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 20})
		start := f.take()
		b1 := f.block(request("/pkg.Svc/One"))
		f.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: b1, EndHeaders: true})
		h1 := f.take()
		b3 := f.block(request("/pkg.Svc/One"))
		f.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: b3, EndHeaders: true, EndStream: true})
		fake := rawFrame(1, 0x4, 5, b3)
		fake = append(fake, "GET /x HTTP/1.1\r\n"...)
		f.fr.WriteData(1, true, fake)
		rest := f.take()
		msg := append(append(append([]byte(preface), start...), h1...), rest...)

		id := newIDs(1)
		announce(t, in, c, 1, id, 0)
		announce(t, in, c, 5, newIDs(5), 0)
		got := s.send(t, c, msg)

		want := append(append([]byte(preface), start...),
			rawFrame(1, 0x4, 1, append(append([]byte(nil), b1...), id.field()...))...)
		want = append(want, rest...)
		if !bytes.Equal(got, want) {
			t.Fatalf("received\n%x\nwant\n%x", got, want)
		}
		d := decode(t, got)
		wantH := append(request("/pkg.Svc/One"), hpack.HeaderField{Name: "traceparent", Value: id.traceparent()})
		if !reflect.DeepEqual(d.headers[1], wantH) {
			t.Errorf("stream 1 headers %v, want %v", d.headers[1], wantH)
		}
		if !reflect.DeepEqual(d.headers[3], request("/pkg.Svc/One")) {
			t.Errorf("stream 3 headers %v, want them unchanged", d.headers[3])
		}
		if !bytes.Equal(d.data[1], fake) {
			t.Errorf("DATA changed: %q", d.data[1])
		}
		// Stream 5's announcement stays: its HEADERS never came; the
		// second sweep that finds it removes and counts it.
		if n := pendingLen(t, in); n != 1 {
			t.Errorf("%d announcements left, want 1 (stream 5)", n)
		}
		in.sweep()
		base = checkStats(t, in, base, map[string]uint64{"injected_http2": 1})
		in.sweep()
		base = checkStats(t, in, base, map[string]uint64{"h2_unsent": 1})
		if n := pendingLen(t, in); n != 0 {
			t.Errorf("%d announcements left after two sweeps, want 0", n)
		}
	})

	t.Run("padded priority continuation", func(t *testing.T) {
		// In one connection: a PADDED HEADERS frame, one with PRIORITY,
		// one with both, a header block continued in CONTINUATION frames,
		// and gRPC-like batching of several streams in one write.
		c := s.dial(t)
		f := newFrames()
		var want, sent []byte
		var parts [][]byte
		wantH := map[uint32][]hpack.HeaderField{}
		prio := http2.PriorityParam{StreamDep: 0, Exclusive: true, Weight: 200}
		for i, p := range []struct {
			pad  uint8
			prio bool
		}{{7, false}, {0, true}, {3, true}, {255, false}} {
			sid := uint32(1 + 2*i)
			path := fmt.Sprintf("/p/%d", i)
			blk := f.block(request(path))
			param := http2.HeadersFrameParam{StreamID: sid, BlockFragment: blk, EndHeaders: true, PadLength: p.pad}
			if p.prio {
				param.Priority = prio
			}
			f.fr.WriteHeaders(param)
			orig := f.take()
			id := newIDs(byte(i + 1))
			announce(t, in, c, sid, id, 0)
			// Expected: the field at the end of the fragment, before the
			// padding, the length grown by its size.
			pre := 0
			if p.pad > 0 {
				pre++
			}
			if p.prio {
				pre += 5
			}
			payload := orig[9:]
			body := append([]byte(nil), payload[:pre+len(blk)]...)
			body = append(body, id.field()...)
			body = append(body, payload[pre+len(blk):]...)
			want = append(want, rawFrame(orig[3], orig[4], sid, body)...)
			sent = append(sent, orig...)
			wantH[sid] = append(request(path), hpack.HeaderField{Name: "traceparent", Value: id.traceparent()})
		}
		// Header block in three pieces: HEADERS, CONTINUATION,
		// CONTINUATION(END_HEADERS); the field goes into the last one.
		blk := f.block(append(request("/cont"), hpack.HeaderField{Name: "x-big", Value: string(bytes.Repeat([]byte("v"), 300))}))
		f.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 9, BlockFragment: blk[:100]})
		f.fr.WriteContinuation(9, false, blk[100:200])
		head := f.take()
		f.fr.WriteContinuation(9, true, blk[200:])
		last := f.take()
		idc := newIDs(9)
		announce(t, in, c, 9, idc, 0)
		sent = append(sent, head...)
		sent = append(sent, last...)
		want = append(want, head...)
		want = append(want, rawFrame(9, 0x4, 9, append(append([]byte(nil), blk[200:]...), idc.field()...))...)
		wantH[9] = append(append(request("/cont"), hpack.HeaderField{Name: "x-big", Value: string(bytes.Repeat([]byte("v"), 300))}),
			hpack.HeaderField{Name: "traceparent", Value: idc.traceparent()})
		parts = append(parts, append([]byte(preface), sent...))

		got := s.send(t, c, parts...)
		if !bytes.Equal(got, append([]byte(preface), want...)) {
			t.Fatalf("received\n%x\nwant\n%x", got, append([]byte(preface), want...))
		}
		d := decode(t, got)
		if !reflect.DeepEqual(d.headers, wantH) {
			t.Errorf("headers\n%v\nwant\n%v", d.headers, wantH)
		}
		base = checkStats(t, in, base, map[string]uint64{"injected_http2": 5})
		if n := pendingLen(t, in); n != 0 {
			t.Errorf("%d announcements left, want 0", n)
		}
	})

	t.Run("split across sends", func(t *testing.T) {
		// Go's bufio writers cut frames anywhere: a DATA frame cut in
		// three sends keeps the walk aligned (the next HEADERS frame is
		// injected); an announced HEADERS frame cut in two, or whose
		// 9-byte header is cut in three, is left as it is, counted, and
		// the walk goes on to inject the ones after.
		c := s.dial(t)
		f := newFrames()
		f.fr.WriteData(1, false, bytes.Repeat([]byte("\x00\x00\x10\x01\x04\x00\x00\x00\x03GET / HTTP/1.1\r\n"), 200))
		data := f.take()
		b3 := f.block(request("/after-data"))
		f.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: b3, EndHeaders: true})
		h3 := f.take()
		b5 := f.block(request("/split"))
		f.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 5, BlockFragment: b5, EndHeaders: true})
		h5 := f.take()
		b7 := f.block(request("/after-split"))
		f.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 7, BlockFragment: b7, EndHeaders: true})
		h7 := f.take()
		// A frame header itself cut (bufio flushes when full, wherever
		// that is): the frame cannot grow, the walk goes on.
		b9 := f.block(request("/header-split"))
		f.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 9, BlockFragment: b9, EndHeaders: true})
		h9 := f.take()
		f.fr.WriteData(1, false, []byte("0123456789"))
		d1 := f.take()
		b11 := f.block(request("/after-header-split"))
		f.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 11, BlockFragment: b11, EndHeaders: true})
		h11 := f.take()

		id3, id5, id7, id11 := newIDs(3), newIDs(5), newIDs(7), newIDs(11)
		announce(t, in, c, 3, id3, 0)
		announce(t, in, c, 5, id5, 0)
		announce(t, in, c, 7, id7, 0)
		announce(t, in, c, 9, newIDs(9), 0)
		announce(t, in, c, 11, id11, 0)
		parts := [][]byte{
			append([]byte(preface), data[:1000]...),
			data[1000:2000],
			append(append([]byte(nil), data[2000:]...), h3...),
			h5[:20],
			append(append(append([]byte(nil), h5[20:]...), h7...), h9[:2]...),
			h9[2:5],
			append(append([]byte(nil), h9[5:]...), d1[:8]...),
			append(append([]byte(nil), d1[8:]...), h11...),
		}
		got := s.send(t, c, parts...)
		want := append([]byte(preface), data...)
		want = append(want, rawFrame(1, 0x4, 3, append(append([]byte(nil), b3...), id3.field()...))...)
		want = append(want, h5...)
		want = append(want, rawFrame(1, 0x4, 7, append(append([]byte(nil), b7...), id7.field()...))...)
		want = append(want, h9...)
		want = append(want, d1...)
		want = append(want, rawFrame(1, 0x4, 11, append(append([]byte(nil), b11...), id11.field()...))...)
		if !bytes.Equal(got, want) {
			t.Fatalf("received\n%x\nwant\n%x", got, want)
		}
		d := decode(t, got)
		if tp := d.headers[5]; !reflect.DeepEqual(tp, request("/split")) {
			t.Errorf("stream 5 headers %v, want them unchanged", tp)
		}
		base = checkStats(t, in, base, map[string]uint64{"injected_http2": 3, "h2_frame_split": 2})
	})

	t.Run("too large", func(t *testing.T) {
		// A block that fits 16384 bytes now but not with the field ('{'
		// is longer in Huffman code: HPACK sends it raw).
		c := s.dial(t)
		f := newFrames()
		hdrs := append(request("/big"), hpack.HeaderField{Name: "x-fill", Value: string(bytes.Repeat([]byte("{"), 16384-100))})
		blk := f.block(hdrs)
		if len(blk) > 16384 || len(blk)+69 <= 16384 {
			t.Fatalf("block of %d bytes does not test the limit", len(blk))
		}
		f.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: blk, EndHeaders: true})
		msg := append([]byte(preface), f.take()...)
		announce(t, in, c, 1, newIDs(1), 0)
		if got := s.send(t, c, msg); !bytes.Equal(got, msg) {
			t.Fatalf("received %d bytes, want the %d sent unchanged", len(got), len(msg))
		}
		base = checkStats(t, in, base, map[string]uint64{"h2_too_large": 1})
	})

	t.Run("lost", func(t *testing.T) {
		// Alignment given up, every later byte untouched, counted once
		// per connection: a frame a client cannot send; more frames in
		// one send than walked; the preface itself cut.
		for _, c := range []struct {
			name   string
			parts  func(h []byte) [][]byte
			reason string
		}{
			{"bad frame", func(h []byte) [][]byte {
				return [][]byte{append([]byte(preface), rawFrame(9, 0x4, 1, []byte{0x82})...), h}
			}, "h2_bad_frame"},
			{"too many frames", func(h []byte) [][]byte {
				many := bytes.Repeat(rawFrame(0, 0, 1, nil), 2100)
				return [][]byte{append(append([]byte(preface), many...), h...)}
			}, "h2_too_many_frames"},
			{"preface split", func(h []byte) [][]byte {
				return [][]byte{[]byte(preface[:10]), append([]byte(preface[10:]), h...)}
			}, "h2_preface_split"},
		} {
			t.Run(c.name, func(t *testing.T) {
				conn := s.dial(t)
				f := newFrames()
				f.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: f.block(request("/l")), EndHeaders: true})
				parts := c.parts(f.take())
				announce(t, in, conn, 1, newIDs(1), 0)
				got := s.send(t, conn, parts...)
				if want := bytes.Join(parts, nil); !bytes.Equal(got, want) {
					t.Fatalf("received\n%x\nwant it unchanged\n%x", got, want)
				}
				in.sweep()
				in.sweep()
				base = checkStats(t, in, base, map[string]uint64{c.reason: 1, "h2_unsent": 1})
			})
		}
	})
}

func TestInjectHTTP1(t *testing.T) {
	// Opened before the injector attached: never in its sockhash, so
	// untouched whatever is announced for it.
	s := newSink(t)
	early := s.dial(t)
	in := startTestInjector(t)
	if n := in.objs.InjectStats.MaxEntries(); n != kernelStats {
		t.Fatalf("inject_stats has %d slots, InjectStats names %d", n, kernelStats)
	}
	base := in.Stats()

	req := "GET /items/42?x=1 HTTP/1.1\r\nHost: svc\r\nUser-Agent: t\r\n\r\n"
	hash := lineHash("GET /items/42")

	t.Run("before attach", func(t *testing.T) {
		announce(t, in, early, 0, newIDs(1), hash)
		if got := s.send(t, early, []byte(req)); string(got) != req {
			t.Fatalf("received %q, want it unchanged", got)
		}
		in.sweep()
		in.sweep()
		base = checkStats(t, in, base, map[string]uint64{"http1_unsent": 1})
	})

	t.Run("request then body", func(t *testing.T) {
		// The announced request gets the header after its request line;
		// a body that looks like a request line, with nothing announced,
		// and one that does not match what is announced stay as they are.
		c := s.dial(t)
		id := newIDs(2)
		announce(t, in, c, 0, id, hash)
		body := "POST /evil HTTP/1.1\r\nHost: x\r\n\r\n"
		parts := [][]byte{[]byte(req), []byte(body)}
		got := s.send(t, c, parts...)
		line := "GET /items/42?x=1 HTTP/1.1\r\n"
		want := line + "traceparent: " + id.traceparent() + "\r\n" + req[len(line):] + body
		if string(got) != want {
			t.Fatalf("received %q, want %q", got, want)
		}
		base = checkStats(t, in, base, map[string]uint64{"injected_http1": 1, "http1_no_announcement": 1})

		c = s.dial(t)
		announce(t, in, c, 0, newIDs(3), lineHash("GET /next"))
		if got := s.send(t, c, []byte(body)); string(got) != body {
			t.Fatalf("received %q, want it unchanged", got)
		}
		base = checkStats(t, in, base, map[string]uint64{"http1_mismatch": 1})
	})

	t.Run("request line split", func(t *testing.T) {
		c := s.dial(t)
		announce(t, in, c, 0, newIDs(4), hash)
		parts := [][]byte{[]byte(req[:20]), []byte(req[20:])}
		if got := s.send(t, c, parts...); string(got) != req {
			t.Fatalf("received %q, want it unchanged", got)
		}
		base = checkStats(t, in, base, map[string]uint64{"http1_no_line": 1})
		if n := pendingLen(t, in); n != 0 {
			t.Errorf("%d announcements left, want 0", n)
		}
	})
}

// pressured dials a listener whose reader sleeps first, with small
// buffers on both sides (accepted sockets inherit the listener's receive
// buffer), so the window closes and the client's send buffer fills. got
// receives all the listener read once the client closes its side.
func pressured(t *testing.T) (*net.TCPConn, chan []byte) {
	t.Helper()
	lc := net.ListenConfig{Control: func(network, address string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) {
			syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 2048)
		})
	}}
	ln, err := lc.Listen(context.Background(), "tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	got := make(chan []byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.(*net.TCPConn).SetReadBuffer(4096)
		time.Sleep(300 * time.Millisecond) // let the client's buffers fill
		b, _ := io.ReadAll(c)
		got <- b
	}()
	c, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	tc := c.(*net.TCPConn)
	tc.SetWriteBuffer(4096)
	return tc, got
}

// HTTP/1.x request lines written while the send buffer is full, several
// rounds on one connection: each gets the header only when the socket can
// queue its grown send whole; otherwise its bytes go out exactly as sent
// (a grown send queued in part would have its tail sent again without
// the inserted bytes). The stream must be every round's bytes, each
// request with its own header or none, as many of each as counted.
func TestInjectHTTP1BackPressure(t *testing.T) {
	in := startTestInjector(t)
	tc, got := pressured(t)
	base := in.Stats()
	const rounds = 8
	body := bytes.Repeat([]byte("x"), 64000) // no request line
	line := "GET /after-pressure HTTP/1.1\r\n"
	rest := "Host: svc\r\n\r\n"
	for i := 0; i < rounds; i++ {
		if _, err := tc.Write(body); err != nil {
			t.Fatal(err)
		}
		announce(t, in, tc, 0, newIDs(byte(10+i)), lineHash("GET /after-pressure"))
		if _, err := tc.Write([]byte(line + rest)); err != nil {
			t.Fatal(err)
		}
	}
	tc.CloseWrite()
	var b []byte
	select {
	case b = <-got:
	case <-time.After(20 * time.Second):
		t.Fatal("listener received nothing")
	}
	injected := 0
	r := string(b)
	for i := 0; i < rounds; i++ {
		if !strings.HasPrefix(r, string(body)+line) {
			t.Fatalf("round %d: the stream is not the body and request line sent", i)
		}
		r = r[len(body)+len(line):]
		if h := "traceparent: " + newIDs(byte(10+i)).traceparent() + "\r\n"; strings.HasPrefix(r, h) {
			injected++
			r = r[len(h):]
		}
		if !strings.HasPrefix(r, rest) {
			t.Fatalf("round %d: the request's headers are not the ones sent", i)
		}
		r = r[len(rest):]
	}
	if r != "" {
		t.Fatalf("%d bytes more than sent", len(r))
	}
	t.Logf("%d of %d requests injected", injected, rounds)
	checkStats(t, in, base, map[string]uint64{"injected_http1": uint64(injected), "send_buffer_full": uint64(rounds - injected)})
}

// Under back-pressure a non-blocking send can be verdicted whole and
// queued in part; the kernel drops the rest and Go sends it again. The
// walker must notice (the socket's write_seq), give the connection up and
// leave its bytes as they are; otherwise it injects exactly.
func TestInjectHTTP2BackPressure(t *testing.T) {
	in := startTestInjector(t)
	tc, got := pressured(t)
	base := in.Stats()

	f := newFrames()
	var sent []byte
	for i := 0; i < 4; i++ {
		f.fr.WriteData(1, false, bytes.Repeat([]byte{byte(i)}, 16000))
	}
	data := f.take()
	blk := f.block(request("/after-pressure"))
	f.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: blk, EndHeaders: true})
	h3 := f.take()
	id := newIDs(3)
	announce(t, in, tc, 3, id, 0)
	sent = append(append([]byte(preface), data...), h3...)
	if _, err := tc.Write(append([]byte(preface), data...)); err != nil {
		t.Fatal(err)
	}
	if _, err := tc.Write(h3); err != nil {
		t.Fatal(err)
	}
	tc.CloseWrite()
	var b []byte
	select {
	case b = <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("listener received nothing")
	}
	st := in.Stats()
	injected := append(append([]byte(preface), data...), rawFrame(1, 0x4, 3, append(append([]byte(nil), blk...), id.field()...))...)
	switch {
	case st["send_buffer_full"]-base["send_buffer_full"] == 1:
		t.Logf("no room to queue the grown send whole: left as it was")
		if !bytes.Equal(b, sent) {
			t.Fatalf("received %d bytes, want the %d sent, unchanged", len(b), len(sent))
		}
		checkStats(t, in, base, map[string]uint64{"send_buffer_full": 1})
	case st["h2_resent"]-base["h2_resent"] == 1:
		t.Logf("a send was queued in part and sent again: connection given up")
		if !bytes.Equal(b, sent) {
			t.Fatalf("received %d bytes, want the %d sent, unchanged", len(b), len(sent))
		}
		checkStats(t, in, base, map[string]uint64{"h2_resent": 1})
	default:
		t.Logf("every send queued whole")
		if !bytes.Equal(b, injected) {
			t.Fatalf("received %d bytes, want %d: the sent ones with the header", len(b), len(injected))
		}
		checkStats(t, in, base, map[string]uint64{"injected_http2": 1})
	}
	decode(t, b)
}

// announcingConn plays the client probe for a real Go HTTP/2 client: it
// follows the frames the transport writes and, before the bytes of a
// HEADERS frame reach the socket, announces its stream.
type announcingConn struct {
	*net.TCPConn
	t     *testing.T
	in    *Injector
	mu    sync.Mutex
	seen  int    // bytes of the stream so far
	next  int    // where the next frame header starts
	carry []byte // a frame header cut by the last write
}

func (c *announcingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seen == 0 {
		c.next = len(preface)
	}
	buf := append(append([]byte(nil), c.carry...), p...)
	base := c.seen - len(c.carry) // stream offset of buf[0]
	c.carry = nil
	for c.next >= base && c.next-base < len(buf) {
		at := c.next - base
		if at+9 > len(buf) {
			c.carry = buf[at:]
			break
		}
		h := buf[at : at+9]
		n := int(h[0])<<16 | int(h[1])<<8 | int(h[2])
		if h[3] == 0x1 { // HEADERS
			sid := uint32(h[5]&0x7f)<<24 | uint32(h[6])<<16 | uint32(h[7])<<8 | uint32(h[8])
			announce(c.t, c.in, c.TCPConn, sid, idsFor(sid), 0)
		}
		c.next += 9 + n
	}
	c.seen += len(p)
	return c.TCPConn.Write(p)
}

func idsFor(sid uint32) ids {
	id := newIDs(byte(sid))
	binary.BigEndian.PutUint32(id.trace[12:], sid)
	binary.BigEndian.PutUint32(id.span[4:], sid)
	return id
}

// A real net/http HTTP/2 (h2c) client and server: 16 concurrent POSTs
// with bodies, several rounds on one connection, so bufio cuts frames
// wherever it flushes. Every request that arrives with a traceparent has
// its own stream's; the rest are exactly the ones counted as split; the
// connection is never given up and every body arrives intact.
func TestInjectHTTP2RealClient(t *testing.T) {
	in := startTestInjector(t)
	base := in.Stats()
	var mu sync.Mutex
	got := map[string]string{} // request id -> traceparent received
	var bad []string
	srv := &http.Server{
		Protocols: new(http.Protocols),
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			rid := r.Header.Get("x-id")
			mu.Lock()
			defer mu.Unlock()
			if r.ProtoMajor != 2 || !bytes.Equal(body, bodyFor(rid)) {
				bad = append(bad, fmt.Sprintf("%s: proto %d, body of %d bytes", rid, r.ProtoMajor, len(body)))
			}
			if _, dup := got[rid]; dup {
				bad = append(bad, rid+" twice")
			}
			got[rid] = r.Header.Get("traceparent")
		}),
	}
	srv.Protocols.SetUnencryptedHTTP2(true)
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Close()

	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	var dials atomic.Int32
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, "tcp4", addr)
		if err != nil {
			return nil, err
		}
		dials.Add(1)
		return &announcingConn{TCPConn: c.(*net.TCPConn), t: t, in: in}, nil
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	// One connection first, so that all the rounds share it.
	warm, _ := http.NewRequest("POST", "http://"+ln.Addr().String()+"/same/path", bytes.NewReader(bodyFor("warm")))
	warm.Header.Set("x-id", "warm")
	resp, err := client.Do(warm)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	const n, rounds = 16, 4
	for r := 0; r < rounds; r++ {
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := 0; i < n; i++ {
			rid := fmt.Sprintf("r%d-%d", r, i)
			wg.Add(1)
			go func() {
				defer wg.Done()
				req, _ := http.NewRequest("POST", "http://"+ln.Addr().String()+"/same/path", bytes.NewReader(bodyFor(rid)))
				req.Header.Set("x-id", rid)
				resp, err := client.Do(req)
				if err != nil {
					errs <- err
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					errs <- fmt.Errorf("%s: status %d", rid, resp.StatusCode)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	}
	if d := dials.Load(); d != 1 {
		t.Errorf("%d connections, want 1", d)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, b := range bad {
		t.Error(b)
	}
	if len(got) != n*rounds+1 {
		t.Fatalf("%d requests arrived, want %d", len(got), n*rounds+1)
	}
	seen := map[string]bool{}
	var with, without uint64
	for rid, tp := range got {
		if tp == "" {
			without++
			continue
		}
		with++
		ok := false
		for s := uint32(1); s < 2*n*rounds+4; s += 2 {
			ok = ok || tp == idsFor(s).traceparent()
		}
		if !ok || seen[tp] {
			t.Errorf("%s arrived with traceparent %q: not one announced, or twice", rid, tp)
		}
		seen[tp] = true
	}
	st := in.Stats()
	if d := st["injected_http2"] - base["injected_http2"]; d != with {
		t.Errorf("injected_http2 %d, but %d requests arrived with a traceparent", d, with)
	}
	if d := st["h2_frame_split"] - base["h2_frame_split"]; d != without {
		t.Errorf("h2_frame_split %d, but %d requests arrived without a traceparent", d, without)
	}
	for _, s := range InjectStats {
		if s.Name != "injected_http2" && s.Name != "h2_frame_split" && s.Name != "http1_unsent" && s.Name != "h2_unsent" {
			if d := st[s.Name] - base[s.Name]; d != 0 {
				t.Errorf("counter %s: %d, want 0", s.Name, d)
			}
		}
	}
	t.Logf("%d of %d requests injected, %d with their HEADERS frame cut between sends", with, len(got), without)
}

func bodyFor(rid string) []byte {
	return bytes.Repeat([]byte(rid+";"), 3000)
}
