package discovery

import (
	"encoding/binary"
	"os"
	"os/exec"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// craft builds one netlink message of the process connector carrying a
// struct proc_event, as the kernel lays it out.
func craft(idx, what uint32, ts uint64, data ...uint32) []byte {
	ev := make([]byte, sizeofProcHeader+4*len(data))
	ne := binary.NativeEndian
	ne.PutUint32(ev[0:], what)
	ne.PutUint32(ev[4:], 1) // cpu
	ne.PutUint64(ev[8:], ts)
	for i, v := range data {
		ne.PutUint32(ev[sizeofProcHeader+4*i:], v)
	}
	b := make([]byte, unix.SizeofNlMsghdr+sizeofCnMsg+len(ev))
	ne.PutUint32(b[0:], uint32(len(b)))
	ne.PutUint16(b[4:], unix.NLMSG_DONE)
	cn := b[unix.SizeofNlMsghdr:]
	ne.PutUint32(cn[0:], idx)
	ne.PutUint32(cn[4:], cnValProc)
	ne.PutUint16(cn[16:], uint16(len(ev)))
	copy(cn[sizeofCnMsg:], ev)
	return b
}

func TestParseProcEvents(t *testing.T) {
	const (
		fork = 0x1
		comm = 0x200
	)
	var dgram []byte
	dgram = append(dgram, craft(cnIdxProc, procEventExec, 111, 42, 42)...)
	dgram = append(dgram, craft(cnIdxProc, fork, 112, 1, 1, 43, 43)...)                // skipped
	dgram = append(dgram, craft(cnIdxProc, comm, 113, 42, 42, 0x41414141)...)          // skipped
	dgram = append(dgram, craft(cnIdxProc, 0, 114, 0)...)                              // an ack: skipped
	dgram = append(dgram, craft(2, procEventExec, 115, 7, 7)...)                       // another connector
	dgram = append(dgram, craft(cnIdxProc, procEventExit, 116, 44, 42, 0, 9, 1, 1)...) // a thread of 42
	dgram = append(dgram, craft(cnIdxProc, procEventExit, 117, 42, 42, 256, 17, 1, 1)...)
	got, err := parseProcEvents(dgram)
	if err != nil {
		t.Fatal(err)
	}
	want := []procEvent{
		{What: procEventExec, PID: 42, TGID: 42, Timestamp: 111},
		{What: procEventExit, PID: 44, TGID: 42, Timestamp: 116},
		{What: procEventExit, PID: 42, TGID: 42, Timestamp: 117},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("event %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestParseProcEventsMalformed(t *testing.T) {
	good := craft(cnIdxProc, procEventExec, 1, 5, 5)
	for name, b := range map[string][]byte{
		"short header": good[:10],
		"connector length too large": func() []byte {
			b := append([]byte{}, good...)
			binary.NativeEndian.PutUint16(b[unix.SizeofNlMsghdr+16:], 200)
			return b
		}(),
		"cut payload": func() []byte {
			b := append([]byte{}, good...)
			binary.NativeEndian.PutUint32(b, uint32(len(b)+8))
			return b
		}(),
		"exec without ids": craft(cnIdxProc, procEventExec, 1, 5),
	} {
		if _, err := parseProcEvents(b); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	// The events before a broken message are still returned.
	evs, err := parseProcEvents(append(append([]byte{}, good...), 1, 2, 3))
	if err == nil || len(evs) != 1 || evs[0].TGID != 5 {
		t.Errorf("got %+v, %v", evs, err)
	}
}

func TestListenMsg(t *testing.T) {
	b := listenMsg(procCnMcastListen, procEventExec|procEventExit, 9)
	ne := binary.NativeEndian
	if len(b) != 16+20+8 || ne.Uint32(b) != uint32(len(b)) || ne.Uint16(b[4:]) != unix.NLMSG_DONE {
		t.Fatalf("header: % x", b)
	}
	cn := b[16:]
	if ne.Uint32(cn) != cnIdxProc || ne.Uint32(cn[4:]) != cnValProc || ne.Uint16(cn[16:]) != 8 ||
		ne.Uint32(cn[20:]) != procCnMcastListen || ne.Uint32(cn[24:]) != procEventExec|procEventExit {
		t.Errorf("connector message: % x", cn)
	}
	if b := listenMsg(procCnMcastIgnore, 0, 1); len(b) != 16+20+4 || ne.Uint16(b[16+16:]) != 4 {
		t.Errorf("plain form: % x", b)
	}
}

// The kernel's own events for a process started here: its exec, then its
// exit, with a timestamp on the monotonic clock.
func TestProcEventsLive(t *testing.T) {
	if unix.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("needs root")
		}
		t.Skip("needs root")
	}
	c, err := dialProcEvents()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cmd := exec.Command("/bin/true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	c.f.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 64<<10)
	var sawExec, sawExit bool
	for !sawExit {
		n, err := c.f.Read(buf)
		if err != nil {
			t.Fatalf("exec %v, exit %v: %v", sawExec, sawExit, err)
		}
		evs, err := parseProcEvents(buf[:n])
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range evs {
			if ev.TGID != pid {
				continue
			}
			if age := time.Since(monoToWall(ev.Timestamp)); age < 0 || age > 5*time.Second {
				t.Errorf("event timestamp %d is %s old", ev.Timestamp, age)
			}
			switch ev.What {
			case procEventExec:
				sawExec = true
			case procEventExit:
				if !sawExec {
					t.Error("exit before exec")
				}
				sawExit = ev.PID == pid
			}
		}
	}
}

// More events than the socket holds: the watcher's reader reports the loss
// once the queue is drained, and events flow again right after.
func TestProcEventsOverflow(t *testing.T) {
	if unix.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("needs root")
		}
		t.Skip("needs root")
	}
	c, err := dialProcEvents()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := c.f.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	setBuf := func(size int) {
		t.Helper()
		raw.Control(func(fd uintptr) { err = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, size) })
		if err != nil {
			t.Fatal(err)
		}
	}
	setBuf(1) // the kernel's minimum
	for i := 0; i < 50; i++ {
		if err := exec.Command("/bin/true").Run(); err != nil {
			t.Fatal(err)
		}
	}
	w := &Watcher{batches: make(chan batch, 16)}
	stop := make(chan struct{})
	w.readers.Add(1)
	go w.read(c, stop)
	defer func() {
		close(stop)
		c.Close()
		w.readers.Wait()
	}()
	timeout := time.After(5 * time.Second)
	for lost := false; !lost; {
		select {
		case b := <-w.batches:
			if b.err != nil {
				t.Fatal(b.err)
			}
			lost = b.lost
		case <-timeout:
			t.Fatal("no loss reported after 100 events into a minimal buffer")
		}
	}
	// Reported once drained: a process started now is seen.
	setBuf(rcvBuf)
	cmd := exec.Command("/bin/true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	for {
		select {
		case b := <-w.batches:
			for _, ev := range b.events {
				if ev.TGID == cmd.Process.Pid {
					return
				}
			}
		case <-timeout:
			t.Fatal("no event after the loss was reported")
		}
	}
}
