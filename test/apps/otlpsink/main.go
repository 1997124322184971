// otlpsink is an OTLP/gRPC trace receiver in a process of its own that
// only counts spans: the bench's tail section exports to it so that the
// collector's decoding and garbage collection do not run in the load
// generator's process, which times the requests (a collector is another
// process in production too). It writes the count to -count-file whenever
// it changes.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
	_ "google.golang.org/grpc/encoding/gzip" // golens may compress
)

type sink struct {
	collectortrace.UnimplementedTraceServiceServer
	spans atomic.Int64
}

func (s *sink) Export(_ context.Context, req *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	n := 0
	for _, rs := range req.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			n += len(ss.Spans)
		}
	}
	s.spans.Add(int64(n))
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "OTLP/gRPC listen address")
	countFile := flag.String("count-file", "", "file the span count is written to")
	flag.Parse()
	if *countFile == "" {
		log.Fatal("-count-file is required")
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	s := &sink{}
	srv := grpc.NewServer()
	collectortrace.RegisterTraceServiceServer(srv, s)
	go func() {
		last := int64(-1)
		for range time.Tick(10 * time.Millisecond) {
			if n := s.spans.Load(); n != last {
				tmp := *countFile + ".tmp"
				if err := os.WriteFile(tmp, []byte(strconv.FormatInt(n, 10)), 0o644); err == nil && os.Rename(tmp, *countFile) == nil {
					last = n
				}
			}
		}
	}()
	fmt.Printf("listening on %s\n", ln.Addr())
	log.Fatal(srv.Serve(ln))
}
