package metrics

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"sync"
	"testing"
	"time"

	collectormetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/stats"
)

// metricsCollector is an OTLP/gRPC metrics receiver noting what arrived
// and how it was compressed.
type metricsCollector struct {
	collectormetrics.UnimplementedMetricsServiceServer
	mu       sync.Mutex
	names    map[string]bool
	encoding string
}

func (c *metricsCollector) Export(_ context.Context, req *collectormetrics.ExportMetricsServiceRequest) (*collectormetrics.ExportMetricsServiceResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, rm := range req.ResourceMetrics {
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				c.names[m.Name] = true
			}
		}
	}
	return &collectormetrics.ExportMetricsServiceResponse{}, nil
}

func (c *metricsCollector) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context {
	return ctx
}
func (c *metricsCollector) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context {
	return ctx
}
func (c *metricsCollector) HandleConn(context.Context, stats.ConnStats) {}
func (c *metricsCollector) HandleRPC(_ context.Context, s stats.RPCStats) {
	if in, ok := s.(*stats.InHeader); ok {
		c.mu.Lock()
		c.encoding = in.Compression
		c.mu.Unlock()
	}
}

// selfSigned makes a self-signed certificate for usage (server or client
// auth), valid for 127.0.0.1.
func selfSigned(t *testing.T, usage x509.ExtKeyUsage) (tls.Certificate, *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "golens test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		BasicConstraintsValid: true, IsCA: true, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, cert
}

// The metric push takes the span exporter's TLS (a private CA and a client
// certificate, for a collector that requires one) and gzip compression.
func TestPushOTLPMutualTLSGzip(t *testing.T) {
	serverCert, serverCA := selfSigned(t, x509.ExtKeyUsageServerAuth)
	clientCert, clientCA := selfSigned(t, x509.ExtKeyUsageClientAuth)
	clients := x509.NewCertPool()
	clients.AddCert(clientCA)
	c := &metricsCollector{names: map[string]bool{}}
	srv := grpc.NewServer(grpc.StatsHandler(c), grpc.Creds(credentials.NewTLS(&tls.Config{
		Certificates: []tls.Certificate{serverCert}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: clients,
	})))
	collectormetrics.RegisterMetricsServiceServer(srv, c)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Stop()

	roots := x509.NewCertPool()
	roots.AddCert(serverCA)
	m := New(Options{})
	stop, err := m.PushOTLP(context.Background(), OTLPConfig{
		Target: ln.Addr().String(), Interval: 50 * time.Millisecond, Compression: "gzip",
		Credentials: credentials.NewTLS(&tls.Config{RootCAs: roots, Certificates: []tls.Certificate{clientCert}}),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer stop(context.Background())
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		c.mu.Lock()
		got, enc := c.names["golens_series_expired_total"], c.encoding
		c.mu.Unlock()
		if got {
			if enc != "gzip" {
				t.Errorf("metrics pushed with compression %q, want gzip", enc)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no metrics pushed over mutual TLS within 5 s")
		}
	}
	if _, err := m.PushOTLP(context.Background(), OTLPConfig{Target: ln.Addr().String(), Credentials: credentials.NewTLS(nil), Compression: "zstd"}); err == nil {
		t.Error("an unknown compression was accepted")
	}
}
