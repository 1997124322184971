// Command chainapp is one hop of a chain of services, for the end-to-end
// tests of trace context across services (A -> B -> C): it serves HTTP/1.1
// and h2c on one port and gRPC (a unary method and a server stream) on
// another, and each request it serves calls the next hop, named by flags,
// the same way (HTTP/1.1 for HTTP/1.1, h2c for h2c, the same gRPC method),
// with the request's context, as ordinary code does. The last hop (no
// -next) only answers. It knows nothing of golens.
//
// Every answer says which traceparent each hop from this one on received
// (the Hop-Traceparents header, or gRPC header metadata hop-traceparents:
// comma-separated, "-" for none), so a test can check what went over the
// wire, not only what the spans say.
//
// The HTTP client is net/http's Transport and the h2c server is net/http's
// own (Go >= 1.24 Protocols), so golens' net/http probes see both; older Go
// builds serve and call HTTP/1.1 and gRPC only.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// hop holds the next hop's clients; empty means this is the last.
type hop struct {
	next    string // URL the HTTP routes call
	h1, h2c *http.Client
	delay   time.Duration // the last hop's wait before it answers

	nextGRPC string // address of the next chain.Hop
	connOnce sync.Once
	conn     *grpc.ClientConn
	connErr  error
}

// grpcConn dials the next hop on first use, not at start: a connection
// opened before golens attached is one it does not touch, and the tests
// start the agents after the services.
func (h *hop) grpcConn() (*grpc.ClientConn, error) {
	h.connOnce.Do(func() {
		// grpc.Dial, not grpc.NewClient: that came in grpc-go v1.63.
		h.conn, h.connErr = grpc.Dial(h.nextGRPC, grpc.WithTransportCredentials(insecure.NewCredentials()))
	})
	return h.conn, h.connErr
}

// serveHTTP answers /hop: it calls the next hop's URL over the protocol the
// request came in on and answers with the status it got (502 when the call
// failed).
func (h *hop) serveHTTP(w http.ResponseWriter, r *http.Request) {
	got := received(r.Header.Values("traceparent"))
	if h.next == "" {
		time.Sleep(h.delay)
		w.Header().Set("Hop-Traceparents", got)
		fmt.Fprintln(w, "ok")
		return
	}
	c := h.h1
	if r.ProtoMajor == 2 {
		c = h.h2c
	}
	if c == nil {
		http.Error(w, "h2c needs Go 1.24", http.StatusNotImplemented)
		return
	}
	req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, h.next, nil)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	resp, err := c.Do(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	w.Header().Set("Hop-Traceparents", got+","+received(resp.Header.Values("Hop-Traceparents")))
	w.WriteHeader(resp.StatusCode)
}

// received is how an answer reports the traceparent values a hop got.
func received(vs []string) string {
	if len(vs) == 0 {
		return "-"
	}
	return strings.Join(vs, "|")
}

// incoming is the traceparent values of a gRPC call's metadata.
func incoming(ctx context.Context) string {
	md, _ := metadata.FromIncomingContext(ctx)
	return received(md.Get("traceparent"))
}

// hopDesc is the chain.Hop service, written by hand (no protoc): Call
// (unary, Empty -> Empty) and Stream (a server stream: Int32Value N in,
// N Int32Values out).
func hopDesc(h *hop) *grpc.ServiceDesc {
	return &grpc.ServiceDesc{
		ServiceName: "chain.Hop",
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{{
			MethodName: "Call",
			Handler: func(_ any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
				if err := dec(new(emptypb.Empty)); err != nil {
					return nil, err
				}
				got := incoming(ctx)
				if h.nextGRPC == "" {
					time.Sleep(h.delay)
					return new(emptypb.Empty), grpc.SetHeader(ctx, metadata.Pairs("hop-traceparents", got))
				}
				conn, err := h.grpcConn()
				if err != nil {
					return nil, err
				}
				out := new(emptypb.Empty)
				var hdr metadata.MD
				if err := conn.Invoke(ctx, "/chain.Hop/Call", new(emptypb.Empty), out, grpc.Header(&hdr)); err != nil {
					return nil, err
				}
				return out, grpc.SetHeader(ctx, metadata.Pairs("hop-traceparents", got+","+received(hdr.Get("hop-traceparents"))))
			},
		}},
		Streams: []grpc.StreamDesc{{
			StreamName:    "Stream",
			ServerStreams: true,
			Handler: func(_ any, stream grpc.ServerStream) error {
				n := new(wrapperspb.Int32Value)
				if err := stream.RecvMsg(n); err != nil {
					return err
				}
				got := incoming(stream.Context())
				if h.nextGRPC == "" {
					time.Sleep(h.delay)
					if err := stream.SetHeader(metadata.Pairs("hop-traceparents", got)); err != nil {
						return err
					}
					for i := int32(0); i < n.Value; i++ {
						if err := stream.SendMsg(wrapperspb.Int32(i)); err != nil {
							return err
						}
					}
					return nil
				}
				conn, err := h.grpcConn()
				if err != nil {
					return err
				}
				return relay(stream.Context(), conn, n, got, stream)
			},
		}},
	}
}

// relay opens the next hop's Stream with ctx, asks it for n and passes on
// every message it sends, after its header with got prepended.
func relay(ctx context.Context, conn *grpc.ClientConn, n *wrapperspb.Int32Value, got string, to grpc.ServerStream) error {
	s, err := conn.NewStream(ctx, &grpc.StreamDesc{StreamName: "Stream", ServerStreams: true}, "/chain.Hop/Stream")
	if err != nil {
		return err
	}
	if err := s.SendMsg(n); err != nil {
		return err
	}
	if err := s.CloseSend(); err != nil {
		return err
	}
	hdr, err := s.Header()
	if err != nil {
		return err
	}
	if err := to.SetHeader(metadata.Pairs("hop-traceparents", got+","+received(hdr.Get("hop-traceparents")))); err != nil {
		return err
	}
	for {
		v := new(wrapperspb.Int32Value)
		err := s.RecvMsg(v)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := to.SendMsg(v); err != nil {
			return err
		}
	}
}

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "HTTP/1.1 and h2c listen address")
	grpcAddr := flag.String("grpc-addr", "127.0.0.1:0", "gRPC listen address")
	next := flag.String("next", "", "URL /hop calls (empty: last hop)")
	nextGRPC := flag.String("next-grpc", "", "host:port whose chain.Hop the gRPC methods call (empty: last hop)")
	delay := flag.Duration("delay", 0, "how long the last hop waits before it answers (so that concurrent requests overlap)")
	flag.Parse()

	h := &hop{next: *next, nextGRPC: *nextGRPC, delay: *delay}
	if h.next != "" {
		// Enough idle connections that 16 concurrent calls keep theirs.
		h.h1 = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
		h.h2c = h2cClient()
	}
	gl, err := net.Listen("tcp", *grpcAddr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "listen:", err)
		os.Exit(1)
	}
	gs := grpc.NewServer()
	gs.RegisterService(hopDesc(h), nil)
	go gs.Serve(gl)

	mux := http.NewServeMux()
	mux.HandleFunc("/hop", h.serveHTTP)
	hl, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "listen:", err)
		os.Exit(1)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	serveH2C(srv)
	fmt.Printf("grpc on %s\n", gl.Addr())
	fmt.Printf("listening on %s\n", hl.Addr())
	go srv.Serve(hl)

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	srv.Close()
	gs.Stop()
}
