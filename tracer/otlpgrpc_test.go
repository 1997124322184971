package tracer

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/golens/golens/buildinfo"
)

// collector is a real OTLP/gRPC trace service on loopback whose answer to
// each call a test chooses.
type collector struct {
	collectortrace.UnimplementedTraceServiceServer
	addr string

	// reply answers the n-th call (from 1); nil accepts everything.
	reply func(ctx context.Context, n int) (*collectortrace.ExportTraceServiceResponse, error)

	mu    sync.Mutex
	calls int
	md    metadata.MD
	reqs  []*collectortrace.ExportTraceServiceRequest
}

func startCollector(t *testing.T, reply func(context.Context, int) (*collectortrace.ExportTraceServiceResponse, error), opts ...grpc.ServerOption) *collector {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &collector{addr: ln.Addr().String(), reply: reply}
	srv := grpc.NewServer(opts...)
	collectortrace.RegisterTraceServiceServer(srv, c)
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	return c
}

func (c *collector) Export(ctx context.Context, req *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	c.mu.Lock()
	c.calls++
	n := c.calls
	c.md = md
	c.reqs = append(c.reqs, req)
	c.mu.Unlock()
	if c.reply == nil {
		return &collectortrace.ExportTraceServiceResponse{}, nil
	}
	return c.reply(ctx, n)
}

func (c *collector) callCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls
}

func newTestExporter(t *testing.T, cfg ExportConfig) *otlpExporter {
	t.Helper()
	cfg.Exporter = "otlp"
	exp, err := NewExporter(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { exp.Shutdown(context.Background()) })
	return exp.(*otlpExporter)
}

func TestOTLPExporterSends(t *testing.T) {
	c := startCollector(t, nil)
	exp := newTestExporter(t, ExportConfig{
		Endpoint: "http://" + c.addr, // a URL: http means plaintext
		Headers:  map[string]string{"authorization": "Bearer t0ken", "X-Tenant": "blue"},
		Timeout:  5 * time.Second,
	})
	spans := benchSpans(3)
	if err := exp.ExportSpans(context.Background(), spans); err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if got := c.md.Get("authorization"); len(got) != 1 || got[0] != "Bearer t0ken" {
		t.Errorf("authorization metadata = %q", got)
	}
	if got := c.md.Get("x-tenant"); len(got) != 1 || got[0] != "blue" {
		t.Errorf("x-tenant metadata = %q", got)
	}
	if got := c.md.Get("user-agent"); len(got) != 1 || !strings.HasPrefix(got[0], "golens/"+buildinfo.Version) {
		t.Errorf("user-agent = %q", got)
	}
	if len(c.reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(c.reqs))
	}
	var n int
	for _, rs := range c.reqs[0].ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			n += len(ss.Spans)
		}
	}
	if n != len(spans) || len(c.reqs[0].ResourceSpans) != 2 {
		t.Errorf("received %d spans in %d ResourceSpans, want 3 in 2", n, len(c.reqs[0].ResourceSpans))
	}
}

func TestOTLPExporterRetries(t *testing.T) {
	retryInfo := func(d time.Duration) error {
		s, err := status.New(codes.ResourceExhausted, "slow down").WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(d)})
		if err != nil {
			t.Fatal(err)
		}
		return s.Err()
	}
	for _, tc := range []struct {
		name  string
		fail  func() error // the first two calls' answer
		calls int          // calls made
		code  codes.Code   // of the error ExportSpans returns, OK for none
	}{
		{"unavailable then ok", func() error { return status.Error(codes.Unavailable, "restarting") }, 3, codes.OK},
		{"aborted then ok", func() error { return status.Error(codes.Aborted, "conflict") }, 3, codes.OK},
		{"server deadline then ok", func() error { return status.Error(codes.DeadlineExceeded, "upstream slow") }, 3, codes.OK},
		{"exhausted with retry info", func() error { return retryInfo(20 * time.Millisecond) }, 3, codes.OK},
		{"exhausted without retry info", func() error { return status.Error(codes.ResourceExhausted, "too big") }, 1, codes.ResourceExhausted},
		{"invalid argument", func() error { return status.Error(codes.InvalidArgument, "bad span") }, 1, codes.InvalidArgument},
		{"unauthenticated", func() error { return status.Error(codes.Unauthenticated, "no token") }, 1, codes.Unauthenticated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := startCollector(t, func(_ context.Context, n int) (*collectortrace.ExportTraceServiceResponse, error) {
				if n <= 2 {
					return nil, tc.fail()
				}
				return &collectortrace.ExportTraceServiceResponse{}, nil
			})
			exp := newTestExporter(t, ExportConfig{Endpoint: c.addr, Insecure: true, Timeout: 5 * time.Second})
			start := time.Now()
			err := exp.ExportSpans(context.Background(), benchSpans(1))
			if got := status.Code(err); got != tc.code {
				t.Errorf("error %v (code %v), want code %v", err, got, tc.code)
			}
			if n := c.callCount(); n != tc.calls {
				t.Errorf("%d calls, want %d", n, tc.calls)
			}
			if took := time.Since(start); tc.calls == 1 && took > time.Second {
				t.Errorf("a final error took %v to come back", took)
			}
		})
	}
}

func TestOTLPExporterPartialSuccess(t *testing.T) {
	resp := &collectortrace.ExportTraceServiceResponse{}
	c := startCollector(t, func(context.Context, int) (*collectortrace.ExportTraceServiceResponse, error) { return resp, nil })
	exp := newTestExporter(t, ExportConfig{Endpoint: c.addr, Insecure: true, Timeout: 5 * time.Second})

	resp.PartialSuccess = &collectortrace.ExportTracePartialSuccess{RejectedSpans: 2, ErrorMessage: "spans too old"}
	err := exp.ExportSpans(context.Background(), benchSpans(5))
	var rej *RejectedError
	if !errors.As(err, &rej) || rej.Rejected != 2 || rej.Sent != 5 {
		t.Fatalf("error %v, want a RejectedError of 2 of 5 spans", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "rejected 2 of 5 spans") || !strings.Contains(msg, "spans too old") {
		t.Errorf("error %q does not say how many and why", msg)
	}
	if n := c.callCount(); n != 1 {
		t.Errorf("a partial success was sent %d times, want once", n)
	}

	// A message without rejected spans is a warning: the spans were taken.
	resp.PartialSuccess = &collectortrace.ExportTracePartialSuccess{ErrorMessage: "attribute truncated"}
	if err := exp.ExportSpans(context.Background(), benchSpans(5)); err != nil {
		t.Errorf("a warning-only partial success failed the export: %v", err)
	}
}

func TestOTLPExporterTimeout(t *testing.T) {
	t.Run("collector hangs", func(t *testing.T) {
		// The handler ignores its own deadline: gRPC passes the client's
		// timeout on, and a handler answering when it expires could beat
		// the client's timer on a loaded machine (the answer would then be
		// this error, not the deadline).
		release := make(chan struct{})
		c := startCollector(t, func(context.Context, int) (*collectortrace.ExportTraceServiceResponse, error) {
			select {
			case <-release:
			case <-time.After(10 * time.Second):
			}
			return nil, status.Error(codes.Unavailable, "too late")
		})
		t.Cleanup(func() { close(release) }) // before the collector stops
		exp := newTestExporter(t, ExportConfig{Endpoint: c.addr, Insecure: true, Timeout: 300 * time.Millisecond})
		start := time.Now()
		err := exp.ExportSpans(context.Background(), benchSpans(1))
		took := time.Since(start)
		if status.Code(err) != codes.DeadlineExceeded {
			t.Errorf("error %v, want DeadlineExceeded", err)
		}
		if took < 250*time.Millisecond || took > time.Second {
			t.Errorf("export took %v with a 300ms timeout", took)
		}
	})
	t.Run("collector keeps failing", func(t *testing.T) {
		c := startCollector(t, func(context.Context, int) (*collectortrace.ExportTraceServiceResponse, error) {
			return nil, status.Error(codes.Unavailable, "down")
		})
		exp := newTestExporter(t, ExportConfig{Endpoint: c.addr, Insecure: true, Timeout: 700 * time.Millisecond})
		start := time.Now()
		err := exp.ExportSpans(context.Background(), benchSpans(1))
		took := time.Since(start)
		if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "attempts") {
			t.Errorf("error %v, want the last Unavailable after several attempts", err)
		}
		if n := c.callCount(); n < 3 {
			t.Errorf("%d attempts within 700ms, want at least 3", n)
		}
		// Back-off never sleeps past the timeout: it gives up instead.
		if took > 700*time.Millisecond {
			t.Errorf("export took %v with a 700ms timeout", took)
		}
	})
	t.Run("caller's deadline", func(t *testing.T) {
		c := startCollector(t, func(context.Context, int) (*collectortrace.ExportTraceServiceResponse, error) {
			return nil, status.Error(codes.Unavailable, "down")
		})
		exp := newTestExporter(t, ExportConfig{Endpoint: c.addr, Insecure: true, Timeout: 10 * time.Second})
		ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
		defer cancel()
		start := time.Now()
		if err := exp.ExportSpans(ctx, benchSpans(1)); err == nil {
			t.Fatal("export to a failing collector succeeded")
		}
		if took := time.Since(start); took > 400*time.Millisecond {
			t.Errorf("export took %v with a 400ms context", took)
		}
	})
}

// An unreachable collector does not fail start-up; each export fails.
func TestOTLPExporterUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	exp := newTestExporter(t, ExportConfig{Endpoint: addr, Insecure: true, Timeout: 500 * time.Millisecond})
	start := time.Now()
	err = exp.ExportSpans(context.Background(), benchSpans(1))
	if status.Code(err) != codes.Unavailable && status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("error %v, want Unavailable or DeadlineExceeded", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("export took %v with a 500ms timeout", took)
	}
}

// writeSelfSigned makes a CA-less self-signed certificate for 127.0.0.1
// and localhost; it returns the server's certificate and the PEM file a
// client trusts.
func writeSelfSigned(t *testing.T) (tls.Certificate, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "golens test collector"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, path
}

func TestOTLPExporterTLS(t *testing.T) {
	cert, caFile := writeSelfSigned(t)
	c := startCollector(t, nil, grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{cert}})))
	for _, tc := range []struct {
		name string
		cfg  ExportConfig
		ok   bool
	}{
		{"host:port and CA file", ExportConfig{Endpoint: c.addr, CAFile: caFile}, true},
		{"https URL and CA file", ExportConfig{Endpoint: "https://" + c.addr, CAFile: caFile}, true},
		{"host's roots only", ExportConfig{Endpoint: c.addr}, false},
		{"plaintext", ExportConfig{Endpoint: c.addr, Insecure: true}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Timeout = 2 * time.Second
			exp := newTestExporter(t, tc.cfg)
			err := exp.ExportSpans(context.Background(), benchSpans(1))
			if (err == nil) != tc.ok {
				t.Errorf("export: %v, want success %v", err, tc.ok)
			}
		})
	}

	if _, err := NewExporter(context.Background(), ExportConfig{Exporter: "otlp", Endpoint: c.addr, CAFile: filepath.Join(t.TempDir(), "none.pem")}, nil); err == nil {
		t.Error("a missing CA file was accepted")
	}
	junk := filepath.Join(t.TempDir(), "junk.pem")
	os.WriteFile(junk, []byte("not a certificate"), 0o600)
	if _, err := NewExporter(context.Background(), ExportConfig{Exporter: "otlp", Endpoint: c.addr, CAFile: junk}, nil); err == nil {
		t.Error("a CA file without certificates was accepted")
	}
}

func TestOTLPExporterShutdown(t *testing.T) {
	c := startCollector(t, nil)
	exp := newTestExporter(t, ExportConfig{Endpoint: c.addr, Insecure: true})
	if err := exp.ExportSpans(context.Background(), benchSpans(1)); err != nil {
		t.Fatal(err)
	}
	if err := exp.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := exp.ExportSpans(context.Background(), benchSpans(1)); !errors.Is(err, errShutdown) {
		t.Errorf("export after shutdown: %v, want %v", err, errShutdown)
	}
	if err := exp.Shutdown(context.Background()); err != nil {
		t.Errorf("second shutdown: %v", err)
	}
}

// A shutdown whose context ends aborts the export still retrying.
func TestOTLPExporterShutdownAborts(t *testing.T) {
	c := startCollector(t, func(context.Context, int) (*collectortrace.ExportTraceServiceResponse, error) {
		return nil, status.Error(codes.Unavailable, "down")
	})
	exp := newTestExporter(t, ExportConfig{Endpoint: c.addr, Insecure: true, Timeout: time.Minute})
	done := make(chan error, 1)
	go func() { done <- exp.ExportSpans(context.Background(), benchSpans(1)) }()
	for c.callCount() == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := exp.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("shutdown: %v, want its context's deadline", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("shutdown took %v with a 100ms context", took)
	}
	select {
	case err := <-done:
		if err == nil {
			t.Error("aborted export reported success")
		}
	case <-time.After(time.Second):
		t.Error("export still running after shutdown")
	}
}

// With gzip the request travels compressed (the collector sees the
// encoding) and arrives whole; an unknown compression is refused.
func TestOTLPExporterGzip(t *testing.T) {
	h := &encodingSeen{}
	c := startCollector(t, nil, grpc.StatsHandler(h))
	exp := newTestExporter(t, ExportConfig{Endpoint: c.addr, Insecure: true, Compression: "gzip", Timeout: 5 * time.Second})
	if err := exp.ExportSpans(context.Background(), benchSpans(50)); err != nil {
		t.Fatal(err)
	}
	h.mu.Lock()
	got := h.enc
	h.mu.Unlock()
	if got != "gzip" {
		t.Errorf("grpc-encoding %q, want gzip", got)
	}
	c.mu.Lock()
	var n int
	for _, rs := range c.reqs[0].ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			n += len(ss.Spans)
		}
	}
	c.mu.Unlock()
	if n != 50 {
		t.Errorf("collector decoded %d spans, want 50", n)
	}
	if _, err := NewExporter(context.Background(), ExportConfig{Exporter: "otlp", Endpoint: c.addr, Compression: "zstd"}, nil); err == nil {
		t.Error("an unknown compression was accepted")
	}
}

// A collector that requires a client certificate takes golens' when given
// one, and refuses the export without it.
func TestOTLPExporterClientCert(t *testing.T) {
	serverCert, caFile := writeSelfSigned(t)
	clientCert, clientPEM := writeClientCert(t) // self-signed: it is its own CA
	pool := x509.NewCertPool()
	pool.AddCert(mustParse(t, clientCert.Certificate[0]))
	c := startCollector(t, nil, grpc.Creds(credentials.NewTLS(&tls.Config{
		Certificates: []tls.Certificate{serverCert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
	})))
	keyPEM := filepath.Join(t.TempDir(), "client.key")
	der, err := x509.MarshalPKCS8PrivateKey(clientCert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(keyPEM, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)

	with := newTestExporter(t, ExportConfig{Endpoint: c.addr, CAFile: caFile, ClientCert: clientPEM, ClientKey: keyPEM, Timeout: 2 * time.Second})
	if err := with.ExportSpans(context.Background(), benchSpans(1)); err != nil {
		t.Errorf("with the client certificate: %v", err)
	}
	without := newTestExporter(t, ExportConfig{Endpoint: c.addr, CAFile: caFile, Timeout: 2 * time.Second})
	if err := without.ExportSpans(context.Background(), benchSpans(1)); err == nil {
		t.Error("export without a client certificate succeeded")
	}
	if _, err := NewExporter(context.Background(), ExportConfig{Exporter: "otlp", Endpoint: c.addr, ClientCert: clientPEM}, nil); err == nil {
		t.Error("a client certificate without its key was accepted")
	}
}

func mustParse(t *testing.T, der []byte) *x509.Certificate {
	t.Helper()
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// encodingSeen is a server stats handler noting the compression of the
// requests' headers.
type encodingSeen struct {
	mu  sync.Mutex
	enc string
}

func (h *encodingSeen) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }
func (h *encodingSeen) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context {
	return ctx
}
func (h *encodingSeen) HandleConn(context.Context, stats.ConnStats) {}
func (h *encodingSeen) HandleRPC(_ context.Context, s stats.RPCStats) {
	if in, ok := s.(*stats.InHeader); ok {
		h.mu.Lock()
		h.enc = in.Compression
		h.mu.Unlock()
	}
}

// writeClientCert makes a self-signed client certificate and returns it
// and its PEM file.
func writeClientCert(t *testing.T) (tls.Certificate, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(2),
		Subject:               pkix.Name{CommonName: "golens test agent"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "client.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, path
}
