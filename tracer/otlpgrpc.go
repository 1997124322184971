package tracer

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	grpcinsecure "google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding/gzip"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/golens/golens/otlp"
	"github.com/golens/golens/span"
)

// exportMethod is the OTLP trace service's one RPC.
const exportMethod = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"

// Retry back-off between attempts of one export: short, because the whole
// export must fit in its timeout and the queue behind it keeps filling.
var (
	retryFirst = 100 * time.Millisecond
	retryMax   = 2 * time.Second
)

// keepBuf is the largest encode buffer kept between exports; one odd huge
// batch should not pin its memory for the agent's lifetime.
const keepBuf = 8 << 20

// errShutdown is returned by exports after Shutdown.
var errShutdown = errors.New("otlp exporter is shut down")

// RejectedError is a partial success: the collector took the request but
// rejected some of its spans.
type RejectedError struct {
	Rejected int64  // spans the collector rejected
	Sent     int    // spans in the request
	Reason   string // the collector's error_message, if any
}

func (e *RejectedError) Error() string {
	if e.Reason == "" {
		return fmt.Sprintf("collector rejected %d of %d spans (no reason given)", e.Rejected, e.Sent)
	}
	return fmt.Sprintf("collector rejected %d of %d spans: %s", e.Rejected, e.Sent, e.Reason)
}

// otlpExporter sends spans to an OTLP/gRPC collector. It encodes each batch
// itself (see otlp.TraceEncoder) and hands gRPC the finished bytes.
type otlpExporter struct {
	log     *slog.Logger
	target  string
	conn    *grpc.ClientConn
	md      metadata.MD
	timeout time.Duration

	// sem is held by one export or by Shutdown at a time: the encoder's
	// buffer is shared, and Shutdown must not close the connection under
	// an export that still has time left.
	sem    chan struct{}
	enc    otlp.TraceEncoder
	closed bool

	// stop aborts exports still running when Shutdown's context ends.
	stop    context.Context
	abort   context.CancelFunc
	warned  atomic.Int64 // unix seconds of the last partial-success warning
	options []grpc.CallOption
}

// newOTLPExporter makes the client connection, which connects lazily: an
// unreachable collector fails exports, not this.
func newOTLPExporter(c ExportConfig) (*otlpExporter, error) {
	tlsCfg, err := ClientTLS(c.CAFile, c.ClientCert, c.ClientKey)
	if err != nil {
		return nil, err
	}
	target, creds, err := OTLPConnection(c.Endpoint, c.Insecure, tlsCfg)
	if err != nil {
		return nil, err
	}
	callOpts := []grpc.CallOption{grpc.ForceCodecV2(rawCodec{})}
	switch c.Compression {
	case "", "none":
	case "gzip":
		callOpts = append(callOpts, grpc.UseCompressor(gzip.Name))
	default:
		return nil, fmt.Errorf("otlp compression %q: want gzip or none", c.Compression)
	}
	conn, err := grpc.NewClient(target,
		grpc.WithTransportCredentials(creds),
		grpc.WithUserAgent("golens/"+Version))
	if err != nil {
		return nil, fmt.Errorf("otlp exporter for %s: %w", target, err)
	}
	e := &otlpExporter{
		log:     c.Log,
		target:  target,
		conn:    conn,
		timeout: c.Timeout,
		sem:     make(chan struct{}, 1),
		options: callOpts,
	}
	if e.log == nil {
		e.log = slog.Default()
	}
	if len(c.Headers) > 0 {
		e.md = metadata.New(c.Headers)
	}
	e.stop, e.abort = context.WithCancel(context.Background())
	return e, nil
}

// OTLPConnection is how golens reaches a collector at endpoint (host:port
// or a URL): the gRPC target and its transport credentials. The precedence
// is otlptracegrpc's, which golens used before: insecure wins, then TLS
// files given (tlsCfg, from ClientTLS; TLS even with an http:// URL), then
// a URL's scheme (anything but https is plaintext), else TLS with the
// host's roots. The span exporter and the metric push both use it.
func OTLPConnection(endpoint string, insecure bool, tlsCfg *tls.Config) (string, credentials.TransportCredentials, error) {
	target, plaintext, err := otlpTarget(endpoint)
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

// otlpTarget turns an endpoint, host:port or a URL, into a gRPC target, and
// says whether the URL's scheme asks for plaintext (anything but https, as
// before).
func otlpTarget(endpoint string) (target string, plaintext bool, err error) {
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

// ExportSpans implements Exporter. Transient failures are
// retried with back-off while the export's time lasts.
func (e *otlpExporter) ExportSpans(ctx context.Context, spans []*span.Span) error {
	if len(spans) == 0 {
		return nil
	}
	select {
	case e.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-e.sem }()
	if e.closed {
		return errShutdown
	}

	var cancel context.CancelFunc
	if e.timeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, e.timeout)
	} else {
		ctx, cancel = context.WithCancel(ctx)
	}
	defer cancel()
	defer context.AfterFunc(e.stop, cancel)()
	if e.md != nil {
		md := e.md
		if out, ok := metadata.FromOutgoingContext(ctx); ok {
			md = metadata.Join(md, out)
		}
		ctx = metadata.NewOutgoingContext(ctx, md)
	}

	req := rawRequest(e.enc.Encode(spans))
	defer func() {
		e.enc.Reset(keepBuf)
	}()

	wait := retryFirst
	for attempt := 1; ; attempt++ {
		var resp collectortrace.ExportTraceServiceResponse
		err := e.conn.Invoke(ctx, exportMethod, req, &resp, e.options...)
		if err == nil {
			return e.partial(&resp, len(spans))
		}
		again, hint := retryable(err)
		if !again || ctx.Err() != nil {
			return e.failed(attempt, err)
		}
		// Jitter keeps a fleet of agents from retrying in step.
		d := wait/2 + rand.N(wait/2+1)
		if hint > 0 {
			d = hint
		}
		if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < d {
			return e.failed(attempt, err)
		}
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return e.failed(attempt, err)
		}
		wait = min(2*wait, retryMax)
	}
}

func (e *otlpExporter) failed(attempts int, err error) error {
	if attempts == 1 {
		return fmt.Errorf("export spans to %s: %w", e.target, err)
	}
	return fmt.Errorf("export spans to %s (%d attempts): %w", e.target, attempts, err)
}

// partial turns a partial success into an error when spans were rejected.
// A message without rejected spans is a warning: the spans were taken.
func (e *otlpExporter) partial(resp *collectortrace.ExportTraceServiceResponse, sent int) error {
	ps := resp.GetPartialSuccess()
	if ps == nil {
		return nil
	}
	if n := ps.GetRejectedSpans(); n > 0 {
		return &RejectedError{Rejected: n, Sent: sent, Reason: ps.GetErrorMessage()}
	}
	if msg := ps.GetErrorMessage(); msg != "" {
		now := time.Now().Unix()
		if last := e.warned.Load(); now-last >= 60 && e.warned.CompareAndSwap(last, now) {
			e.log.Warn("collector accepted spans with a warning", "collector", e.target, "warning", msg)
		}
	}
	return nil
}

// retryable says whether an export that failed with err may succeed if
// sent again, and how long the server asked to wait, if it did. The codes
// are those the OTLP specification names as retryable; ResourceExhausted
// only with the server's RetryInfo, since gRPC also uses it for a message
// over the size limit, which no retry fixes.
func retryable(err error) (bool, time.Duration) {
	s := status.Convert(err)
	var hint time.Duration
	var told bool
	for _, d := range s.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			hint, told = ri.GetRetryDelay().AsDuration(), true
		}
	}
	switch s.Code() {
	case codes.Canceled, codes.DeadlineExceeded, codes.Aborted,
		codes.OutOfRange, codes.Unavailable, codes.DataLoss:
		return true, hint
	case codes.ResourceExhausted:
		return told, hint
	}
	return false, 0
}

// Shutdown implements Exporter: it waits for a running export
// (or aborts it when ctx ends first) and closes the connection.
func (e *otlpExporter) Shutdown(ctx context.Context) error {
	var ctxErr error
	select {
	case e.sem <- struct{}{}:
	case <-ctx.Done():
		ctxErr = ctx.Err()
		e.abort()
		e.sem <- struct{}{}
	}
	defer func() { <-e.sem }()
	if e.closed {
		return ctxErr
	}
	e.closed = true
	e.abort()
	return errors.Join(ctxErr, e.conn.Close())
}

// rawRequest is an ExportTraceServiceRequest already in wire format.
type rawRequest []byte

// rawCodec sends a rawRequest as it is and decodes replies with the
// generated types. It names itself "proto" so the content type is the
// application/grpc+proto every collector expects.
type rawCodec struct{}

// Marshal copies the request into a buffer from gRPC's pool: gRPC may
// still be writing (or keeping for a retry) the bytes after Invoke returns,
// and the encoder reuses its buffer for the next batch.
func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	b, ok := v.(rawRequest)
	if !ok {
		return nil, fmt.Errorf("raw codec: cannot marshal %T", v)
	}
	return mem.BufferSlice{mem.Copy(b, mem.DefaultBufferPool())}, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	m, ok := v.(proto.Message)
	if !ok {
		return fmt.Errorf("raw codec: cannot unmarshal into %T", v)
	}
	buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
	defer buf.Free()
	return proto.Unmarshal(buf.ReadOnlyData(), m)
}

func (rawCodec) Name() string { return "proto" }
