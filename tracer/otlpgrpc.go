package tracer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"

	"github.com/golens/golens/otlp"
	"github.com/golens/golens/span"
)

// exportMethod is the OTLP trace service's one RPC.
const exportMethod = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"

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
// itself (see otlp.TraceEncoder) and hands the otlp client the finished bytes.
type otlpExporter struct {
	log    *slog.Logger
	client *otlp.Client

	// sem is held by one export or by Shutdown at a time: the encoder's
	// buffer is shared, and Shutdown must not close the connection under
	// an export that still has time left.
	sem    chan struct{}
	enc    otlp.TraceEncoder
	closed bool

	warned atomic.Int64 // unix seconds of the last partial-success warning
}

// newOTLPExporter makes the client connection, which connects lazily: an
// unreachable collector fails exports, not this.
func newOTLPExporter(c ExportConfig) (*otlpExporter, error) {
	client, err := otlp.Dial(otlp.Config{
		Endpoint: c.Endpoint, Insecure: c.Insecure,
		CAFile: c.CAFile, ClientCert: c.ClientCert, ClientKey: c.ClientKey,
		Headers: c.Headers, Compression: c.Compression, Timeout: c.Timeout,
	})
	if err != nil {
		return nil, err
	}
	e := &otlpExporter{log: c.Log, client: client, sem: make(chan struct{}, 1)}
	if e.log == nil {
		e.log = slog.Default()
	}
	return e, nil
}

// ExportSpans implements Exporter. Transient failures are
// retried with back-off while the export's time lasts (otlp.Client.Export).
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

	req := e.enc.Encode(spans)
	defer e.enc.Reset(keepBuf)
	var resp collectortrace.ExportTraceServiceResponse
	attempts, err := e.client.Export(ctx, exportMethod, req, &resp)
	if err != nil {
		return e.failed(attempts, err)
	}
	return e.partial(&resp, len(spans))
}

func (e *otlpExporter) failed(attempts int, err error) error {
	if attempts == 1 {
		return fmt.Errorf("export spans to %s: %w", e.client.Target(), err)
	}
	return fmt.Errorf("export spans to %s (%d attempts): %w", e.client.Target(), attempts, err)
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
			e.log.Warn("collector accepted spans with a warning", "collector", e.client.Target(), "warning", msg)
		}
	}
	return nil
}

// Shutdown implements Exporter: it waits for a running export
// (or aborts it when ctx ends first) and closes the connection.
func (e *otlpExporter) Shutdown(ctx context.Context) error {
	var ctxErr error
	select {
	case e.sem <- struct{}{}:
	case <-ctx.Done():
		ctxErr = ctx.Err()
		e.client.Abort()
		e.sem <- struct{}{}
	}
	defer func() { <-e.sem }()
	if e.closed {
		return ctxErr
	}
	e.closed = true
	return errors.Join(ctxErr, e.client.Close())
}
