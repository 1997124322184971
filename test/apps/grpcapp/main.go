// Command grpcapp is the gRPC target of the end-to-end tests: a gRPC server
// (the standard health service and a small hand-written test.Echo service,
// no protoc needed) and an HTTP front whose /call route makes gRPC calls
// with the request's context, and a /fanout route that makes several at once
// on that one context. It knows nothing of golens. It uses only APIs
// that every grpc-go release from v1.60 on has, so that the tests can build
// it against each of them.
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
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// echoServer implements test.Echo by hand: Ok, Fail (INTERNAL), Missing
// (NOT_FOUND), Status (answers with the code it is sent), Count (a server
// stream of N messages), Sum (a client stream, answered with its total)
// and Chat (bidirectional: each message echoed).
type echoServer struct{}

// unary makes a MethodDesc handler; its type is spelled out because
// grpc.MethodHandler names it only from grpc-go v1.6x on.
func unary(fn func(context.Context) error) func(any, context.Context, func(any) error, grpc.UnaryServerInterceptor) (any, error) {
	return func(srv any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
		if err := dec(new(emptypb.Empty)); err != nil {
			return nil, err
		}
		return new(emptypb.Empty), fn(ctx)
	}
}

var echoDesc = grpc.ServiceDesc{
	ServiceName: "test.Echo",
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{
		{MethodName: "Ok", Handler: unary(func(context.Context) error { return nil })},
		{MethodName: "Fail", Handler: unary(func(context.Context) error { return status.Error(codes.Internal, "boom") })},
		{MethodName: "Missing", Handler: unary(func(context.Context) error { return status.Error(codes.NotFound, "no such thing") })},
		{MethodName: "Status", Handler: func(srv any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
			c := new(wrapperspb.Int32Value)
			if err := dec(c); err != nil {
				return nil, err
			}
			if c.Value == 0 {
				return new(emptypb.Empty), nil
			}
			return nil, status.Error(codes.Code(c.Value), "as asked")
		}},
	},
	Streams: []grpc.StreamDesc{{
		StreamName:    "Count",
		ServerStreams: true,
		Handler: func(srv any, stream grpc.ServerStream) error {
			n := new(wrapperspb.Int32Value)
			if err := stream.RecvMsg(n); err != nil {
				return err
			}
			for i := int32(0); i < n.Value; i++ {
				if err := stream.SendMsg(wrapperspb.Int32(i)); err != nil {
					return err
				}
			}
			return nil
		},
	}, {
		StreamName:    "Sum",
		ClientStreams: true,
		Handler: func(srv any, stream grpc.ServerStream) error {
			var sum int32
			for {
				v := new(wrapperspb.Int32Value)
				err := stream.RecvMsg(v)
				if err == io.EOF {
					return stream.SendMsg(wrapperspb.Int32(sum))
				}
				if err != nil {
					return err
				}
				sum += v.Value
			}
		},
	}, {
		StreamName:    "Chat",
		ClientStreams: true,
		ServerStreams: true,
		Handler: func(srv any, stream grpc.ServerStream) error {
			for {
				v := new(wrapperspb.Int32Value)
				err := stream.RecvMsg(v)
				if err == io.EOF {
					return nil
				}
				if err != nil {
					return err
				}
				if err := stream.SendMsg(v); err != nil {
					return err
				}
			}
		},
	}},
}

// call makes one gRPC call to target and returns its status code.
func call(ctx context.Context, conn *grpc.ClientConn, method string, n int) codes.Code {
	var err error
	switch method {
	case "Health":
		_, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	case "Count":
		var s grpc.ClientStream
		s, err = conn.NewStream(ctx, &echoDesc.Streams[0], "/test.Echo/Count")
		if err == nil {
			if err = s.SendMsg(wrapperspb.Int32(int32(n))); err == nil {
				s.CloseSend()
				for {
					if err = s.RecvMsg(new(wrapperspb.Int32Value)); err != nil {
						break
					}
				}
				if err == io.EOF {
					err = nil
				}
			}
		}
	case "Status":
		err = conn.Invoke(ctx, "/test.Echo/Status", wrapperspb.Int32(int32(n)), new(emptypb.Empty))
	case "Sum":
		var s grpc.ClientStream
		s, err = conn.NewStream(ctx, &echoDesc.Streams[1], "/test.Echo/Sum")
		for i := 0; err == nil && i < n; i++ {
			err = s.SendMsg(wrapperspb.Int32(int32(i)))
		}
		if err == nil {
			err = s.CloseSend()
		}
		if err == nil {
			err = s.RecvMsg(new(wrapperspb.Int32Value))
		}
	case "Chat":
		var s grpc.ClientStream
		s, err = conn.NewStream(ctx, &echoDesc.Streams[2], "/test.Echo/Chat")
		for i := 0; err == nil && i < n; i++ {
			if err = s.SendMsg(wrapperspb.Int32(int32(i))); err == nil {
				err = s.RecvMsg(new(wrapperspb.Int32Value))
			}
		}
		if err == nil {
			s.CloseSend()
			if err = s.RecvMsg(new(wrapperspb.Int32Value)); err == io.EOF {
				err = nil
			}
		}
	default:
		err = conn.Invoke(ctx, "/test.Echo/"+method, new(emptypb.Empty), new(emptypb.Empty))
	}
	return status.Code(err)
}

func main() {
	httpAddr := flag.String("addr", "127.0.0.1:0", "HTTP listen address")
	grpcAddr := flag.String("grpc-addr", "127.0.0.1:0", "gRPC listen address")
	flag.Parse()

	gl, err := net.Listen("tcp", *grpcAddr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "listen:", err)
		os.Exit(1)
	}
	gs := grpc.NewServer()
	gs.RegisterService(&echoDesc, echoServer{})
	healthpb.RegisterHealthServer(gs, health.NewServer())
	go gs.Serve(gl)

	var connsMu sync.Mutex
	conns := map[string]*grpc.ClientConn{}
	// dial returns the ClientConn (its own TCP connection) number k to
	// target, made on first use.
	dial := func(target string, k int) (*grpc.ClientConn, error) {
		connsMu.Lock()
		defer connsMu.Unlock()
		key := target + "#" + strconv.Itoa(k)
		if conn, ok := conns[key]; ok {
			return conn, nil
		}
		// grpc.Dial, not grpc.NewClient: that came in grpc-go v1.63.
		conn, err := grpc.Dial(target, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return nil, err
		}
		conns[key] = conn
		return conn, nil
	}
	mux := http.NewServeMux()
	// /call?target=ADDR&method=Ok|Fail|Missing|Status|Count|Sum|Chat|Health[&n=N] makes the
	// call with the request's context; 200 when it returned OK, else 502
	// with the code in the body.
	mux.HandleFunc("/call", func(w http.ResponseWriter, r *http.Request) {
		conn, err := dial(r.URL.Query().Get("target"), 0)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		code := call(r.Context(), conn, r.URL.Query().Get("method"), n)
		if code != codes.OK {
			w.WriteHeader(http.StatusBadGateway)
		}
		fmt.Fprint(w, code.String())
	})
	// /fanout?target=ADDR&calls=METHOD[:N][@K],... makes all the calls at
	// once, each from its own goroutine with the one request context (an
	// errgroup-style fan-out), and answers 200 with their codes in order,
	// comma-separated. @K sends a call on connection K (default 0), each
	// its own ClientConn; a call ending in +tp carries the request's tp
	// parameter as its own "traceparent" metadata, as an application with
	// an SDK would.
	mux.HandleFunc("/fanout", func(w http.ResponseWriter, r *http.Request) {
		calls := strings.Split(r.URL.Query().Get("calls"), ",")
		conns := make([]*grpc.ClientConn, len(calls))
		for i, c := range calls {
			_, at, _ := strings.Cut(strings.TrimSuffix(c, "+tp"), "@")
			k, _ := strconv.Atoi(at)
			var err error
			if conns[i], err = dial(r.URL.Query().Get("target"), k); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
		}
		got := make([]string, len(calls))
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i, c := range calls {
			ctx := r.Context()
			if c, ok := strings.CutSuffix(c, "+tp"); ok {
				calls[i] = c
				ctx = metadata.AppendToOutgoingContext(ctx, "traceparent", r.URL.Query().Get("tp"))
			}
			c, _, _ := strings.Cut(calls[i], "@")
			method, arg, _ := strings.Cut(c, ":")
			n, _ := strconv.Atoi(arg)
			wg.Add(1)
			go func(i int, ctx context.Context, conn *grpc.ClientConn, method string, n int) {
				defer wg.Done()
				<-start // all in flight together
				got[i] = call(ctx, conn, method, n).String()
			}(i, ctx, conns[i], method, n)
		}
		close(start)
		wg.Wait()
		fmt.Fprint(w, strings.Join(got, ","))
	})
	hl, err := net.Listen("tcp", *httpAddr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "listen:", err)
		os.Exit(1)
	}
	fmt.Printf("grpc on %s\n", gl.Addr())
	fmt.Printf("listening on %s\n", hl.Addr())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(hl)

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	srv.Close()
	gs.Stop()
}
