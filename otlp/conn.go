// Package otlp is golens' OTLP/gRPC transport: how it reaches a collector
// (endpoint, TLS, credentials, headers, compression) and the export call
// with its retries. Spans and metrics both use it; what goes in a request
// is theirs.
package otlp

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/url"
	"os"
	"strings"

	"google.golang.org/grpc/credentials"
	grpcinsecure "google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding/gzip"
)

// ClientTLS is the TLS configuration of a connection to a collector: the
// CAs of caFile (none: the host's roots) and, for a collector that requires
// one, the client certificate of certFile and keyFile. It is nil when none
// of them is set.
func ClientTLS(caFile, certFile, keyFile string) (*tls.Config, error) {
	if (certFile == "") != (keyFile == "") {
		return nil, fmt.Errorf("otlp client certificate: need both the certificate and its key")
	}
	if caFile == "" && certFile == "" {
		return nil, nil
	}
	cfg := &tls.Config{}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("read CA file: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s holds no PEM certificate", caFile)
		}
	}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("otlp client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// Connection is how golens reaches a collector at endpoint (host:port or a
// URL): the gRPC target and its transport credentials. The precedence is
// otlptracegrpc's, which golens used before: insecure wins, then TLS files
// given (tlsCfg, from ClientTLS; TLS even with an http:// URL), then a
// URL's scheme (anything but https is plaintext), else TLS with the host's
// roots.
func Connection(endpoint string, insecure bool, tlsCfg *tls.Config) (string, credentials.TransportCredentials, error) {
	target, plaintext, err := parseEndpoint(endpoint)
	if err != nil {
		return "", nil, err
	}
	switch {
	case insecure:
		return target, grpcinsecure.NewCredentials(), nil
	case tlsCfg != nil:
		return target, credentials.NewTLS(tlsCfg), nil
	case plaintext:
		return target, grpcinsecure.NewCredentials(), nil
	default:
		return target, credentials.NewTLS(nil), nil // the host's roots
	}
}

// parseEndpoint turns an endpoint, host:port or a URL, into a gRPC target,
// and says whether the URL's scheme asks for plaintext (anything but
// https, as before).
func parseEndpoint(endpoint string) (target string, plaintext bool, err error) {
	if !strings.Contains(endpoint, "://") {
		return endpoint, false, nil
	}
	u, err := url.Parse(endpoint)
	if err != nil {
		return "", false, fmt.Errorf("otlp endpoint: %w", err)
	}
	if u.Host == "" {
		return "", false, fmt.Errorf("otlp endpoint %q has no host", endpoint)
	}
	return u.Host, u.Scheme != "https", nil
}

// Compressor is the gRPC compressor that an OTLP compression setting
// (OTEL_EXPORTER_OTLP_COMPRESSION: gzip or none) names: "" for none.
// Anything else is an error.
func Compressor(compression string) (string, error) {
	switch compression {
	case "", "none":
		return "", nil
	case "gzip":
		return gzip.Name, nil
	}
	return "", fmt.Errorf("otlp compression %q: want gzip or none", compression)
}
