package discovery

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// The process events connector (linux/connector.h, linux/cn_proc.h);
// golang.org/x/sys/unix has NETLINK_CONNECTOR but not these.
const (
	cnIdxProc = 1 // CN_IDX_PROC, also the multicast group to join
	cnValProc = 1 // CN_VAL_PROC

	procCnMcastListen = 1 // PROC_CN_MCAST_LISTEN
	procCnMcastIgnore = 2 // PROC_CN_MCAST_IGNORE

	procEventExec uint32 = 0x00000002 // PROC_EVENT_EXEC
	procEventExit uint32 = 0x80000000 // PROC_EVENT_EXIT

	sizeofCnMsg      = 20 // struct cn_msg without its data
	sizeofProcHeader = 16 // what, cpu, timestamp_ns of struct proc_event
)

// procEvent is one exec or exit the kernel reported.
type procEvent struct {
	What      uint32
	PID       int    // the task (thread) id
	TGID      int    // the process id
	Timestamp uint64 // CLOCK_MONOTONIC, ns
}

// parseProcEvents decodes one datagram of the process events connector:
// netlink messages, each a cn_msg carrying a struct proc_event. Events other
// than exec and exit, and messages of other connectors, are skipped.
func parseProcEvents(b []byte) ([]procEvent, error) {
	var evs []procEvent
	ne := binary.NativeEndian
	for len(b) > 0 {
		if len(b) < unix.SizeofNlMsghdr {
			return evs, fmt.Errorf("netlink message of %d bytes", len(b))
		}
		size := int(ne.Uint32(b[0:]))
		typ := ne.Uint16(b[4:])
		if size < unix.SizeofNlMsghdr || size > len(b) {
			return evs, fmt.Errorf("netlink message claims %d bytes, %d present", size, len(b))
		}
		d := b[unix.SizeofNlMsghdr:size]
		next := (size + unix.NLMSG_ALIGNTO - 1) &^ (unix.NLMSG_ALIGNTO - 1)
		if next > len(b) {
			next = len(b)
		}
		b = b[next:]
		if typ == unix.NLMSG_ERROR || typ == unix.NLMSG_NOOP || typ == unix.NLMSG_OVERRUN {
			continue
		}
		if len(d) < sizeofCnMsg {
			return evs, fmt.Errorf("connector message of %d bytes", len(d))
		}
		if ne.Uint32(d[0:]) != cnIdxProc || ne.Uint32(d[4:]) != cnValProc {
			continue
		}
		n := int(ne.Uint16(d[16:]))
		d = d[sizeofCnMsg:]
		if n > len(d) {
			return evs, fmt.Errorf("connector payload of %d bytes, %d present", n, len(d))
		}
		d = d[:n]
		if len(d) < sizeofProcHeader {
			continue // an ack or something shorter than an event
		}
		ev := procEvent{What: ne.Uint32(d[0:]), Timestamp: ne.Uint64(d[8:])}
		data := d[sizeofProcHeader:]
		switch ev.What {
		case procEventExec, procEventExit:
			// Both start with process_pid and process_tgid.
			if len(data) < 8 {
				return evs, fmt.Errorf("event %#x with %d bytes of data", ev.What, len(data))
			}
			ev.PID = int(ne.Uint32(data[0:]))
			ev.TGID = int(ne.Uint32(data[4:]))
			evs = append(evs, ev)
		}
	}
	return evs, nil
}

// procConn is a subscription to the kernel's process events. The kernel
// accepts subscriptions only from the initial PID and user namespaces (an
// agent in a container needs hostPID); elsewhere it stays silent and the
// periodic rescan is all there is.
type procConn struct {
	f   *os.File // non-blocking, so reads honour Close and deadlines
	seq uint32
}

// rcvBuf is the socket buffer asked for: about 100k events, so an exec storm
// while targets are being attached does not overflow it.
const rcvBuf = 8 << 20

func dialProcEvents() (*procConn, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_CONNECTOR)
	if err != nil {
		return nil, fmt.Errorf("open netlink connector socket: %w", err)
	}
	// SO_RCVBUFFORCE passes rmem_max with CAP_NET_ADMIN; else take what we get.
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rcvBuf) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, rcvBuf)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: cnIdxProc}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("bind netlink connector socket: %w", err)
	}
	c := &procConn{f: os.NewFile(uintptr(fd), "proc-connector")}
	// The plain form subscribes to every event on any kernel. Kernels from
	// 6.6 on also take a filter (struct proc_input): exec and exit only, so
	// forks and thread events are not even sent. Older kernels ignore it.
	if err := c.control(listenMsg(procCnMcastListen, 0, 1)); err != nil {
		c.f.Close()
		return nil, err
	}
	if err := c.control(listenMsg(procCnMcastListen, procEventExec|procEventExit, 2)); err != nil {
		c.f.Close()
		return nil, err
	}
	return c, nil
}

// listenMsg builds a subscription request: with filter 0, the plain 4-byte
// operation; else a struct proc_input {op, event_type}.
func listenMsg(op uint32, filter uint32, seq uint32) []byte {
	payload := 4
	if filter != 0 {
		payload = 8
	}
	b := make([]byte, unix.SizeofNlMsghdr+sizeofCnMsg+payload)
	ne := binary.NativeEndian
	ne.PutUint32(b[0:], uint32(len(b)))
	ne.PutUint16(b[4:], unix.NLMSG_DONE)
	ne.PutUint32(b[8:], seq)
	cn := b[unix.SizeofNlMsghdr:]
	ne.PutUint32(cn[0:], cnIdxProc)
	ne.PutUint32(cn[4:], cnValProc)
	ne.PutUint32(cn[8:], seq)
	ne.PutUint16(cn[16:], uint16(payload))
	ne.PutUint32(cn[20:], op)
	if filter != 0 {
		ne.PutUint32(cn[24:], filter)
	}
	return b
}

func (c *procConn) control(msg []byte) error {
	raw, err := c.f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = raw.Write(func(fd uintptr) bool {
		serr = unix.Sendto(int(fd), msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
		return !errors.Is(serr, unix.EAGAIN)
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("subscribe to process events: %w", err)
	}
	return nil
}

// Close unsubscribes (so the kernel stops building events nobody reads)
// and closes the socket.
func (c *procConn) Close() error {
	_ = c.control(listenMsg(procCnMcastIgnore, 0, 3))
	return c.f.Close()
}
