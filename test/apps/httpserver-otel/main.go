// Command httpserver-otel is test/apps/httpserver instrumented by hand with
// otelhttp: the same routes, every request traced (AlwaysSample), spans
// batched and exported over OTLP/gRPC to OTEL_EXPORTER_OTLP_ENDPOINT
// (plaintext). The benchmark compares golens against it.
//
// For the tests of trace context across services it is also a last hop of
// test/apps/chainapp: /hop answers over HTTP/1.1 and, with -h2c, HTTP/2
// with prior knowledge; -grpc-addr serves chain.Hop (Call, and the server
// stream Stream) traced by otelgrpc.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

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

// hopDesc is chain.Hop as test/apps/chainapp serves it, as a last hop:
// Call (Empty -> Empty) and Stream (Int32Value N in, N Int32Values out).
var hopDesc = grpc.ServiceDesc{
	ServiceName: "chain.Hop",
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Call",
		Handler: func(_ any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
			if err := dec(new(emptypb.Empty)); err != nil {
				return nil, err
			}
			return new(emptypb.Empty), grpc.SetHeader(ctx, metadata.Pairs("hop-traceparents", incoming(ctx)))
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
			if err := stream.SetHeader(metadata.Pairs("hop-traceparents", incoming(stream.Context()))); err != nil {
				return err
			}
			for i := int32(0); i < n.Value; i++ {
				if err := stream.SendMsg(wrapperspb.Int32(i)); err != nil {
					return err
				}
			}
			return nil
		},
	}},
}

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	h2c := flag.Bool("h2c", false, "also serve HTTP/2 with prior knowledge (h2c)")
	grpcAddr := flag.String("grpc-addr", "", "serve chain.Hop over gRPC on this address, traced by otelgrpc")
	flag.Parse()

	ctx := context.Background()
	tp, err := newTracerProvider(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "tracing:", err)
		os.Exit(1)
	}
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.TraceContext{})

	mux := http.NewServeMux()
	// /hello answers with a body: the status (200) is written by Write.
	mux.HandleFunc("/hello", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "hello")
	})
	// /echo/ID answers 200 without writing anything: net/http sends it.
	mux.HandleFunc("/echo/", func(w http.ResponseWriter, r *http.Request) {})
	// /status/CODE answers with that status.
	mux.HandleFunc("/status/", func(w http.ResponseWriter, r *http.Request) {
		code, err := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/status/"))
		if err != nil || code < 100 || code > 999 {
			code = http.StatusBadRequest
		}
		w.WriteHeader(code)
	})
	// /hop is a chain's last hop: it answers at once, saying which
	// traceparent it received as chainapp does.
	mux.HandleFunc("/hop", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Hop-Traceparents", received(r.Header.Values("traceparent")))
		fmt.Fprintln(w, "ok")
	})
	// /sleep?ms=N waits N milliseconds before answering.
	mux.HandleFunc("/sleep", func(w http.ResponseWriter, r *http.Request) {
		ms, _ := strconv.Atoi(r.URL.Query().Get("ms"))
		time.Sleep(time.Duration(ms) * time.Millisecond)
		w.WriteHeader(http.StatusOK)
	})

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "listen:", err)
		os.Exit(1)
	}
	// The benchmark reads this line to learn the port.
	fmt.Printf("listening on %s\n", ln.Addr())
	handler := otelhttp.NewHandler(mux, "server")
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	if *h2c {
		p := new(http.Protocols)
		p.SetHTTP1(true)
		p.SetUnencryptedHTTP2(true)
		srv.Protocols = p
	}
	go srv.Serve(ln)
	if *grpcAddr != "" {
		gl, err := net.Listen("tcp", *grpcAddr)
		if err != nil {
			fmt.Fprintln(os.Stderr, "listen:", err)
			os.Exit(1)
		}
		gs := grpc.NewServer(grpc.StatsHandler(otelgrpc.NewServerHandler()))
		gs.RegisterService(&hopDesc, nil)
		go gs.Serve(gl)
		defer gs.Stop()
	}

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	srv.Close()
	// Flush what the batch processor still holds.
	shutdown, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := tp.Shutdown(shutdown); err != nil {
		fmt.Fprintln(os.Stderr, "tracing shutdown:", err)
	}
}

// newTracerProvider samples every request and batches its spans to the OTLP
// endpoint named by OTEL_EXPORTER_OTLP_ENDPOINT, without TLS.
func newTracerProvider(ctx context.Context) (*sdktrace.TracerProvider, error) {
	endpoint := os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT")
	if endpoint == "" {
		return nil, fmt.Errorf("OTEL_EXPORTER_OTLP_ENDPOINT is not set")
	}
	endpoint = strings.TrimPrefix(strings.TrimPrefix(endpoint, "http://"), "https://")
	exp, err := otlptracegrpc.New(ctx,
		otlptracegrpc.WithEndpoint(endpoint),
		otlptracegrpc.WithInsecure(),
	)
	if err != nil {
		return nil, fmt.Errorf("otlp exporter for %s: %w", endpoint, err)
	}
	res, err := resource.Merge(resource.Default(),
		resource.NewSchemaless(semconv.ServiceName("httpserver-otel")))
	if err != nil {
		return nil, err
	}
	return sdktrace.NewTracerProvider(
		sdktrace.WithSampler(sdktrace.AlwaysSample()),
		sdktrace.WithBatcher(exp),
		sdktrace.WithResource(res),
	), nil
}
