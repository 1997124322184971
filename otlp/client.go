package otlp

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/golens/golens/buildinfo"
)

// Retry back-off between attempts of one export: short, because the whole
// export must fit in its timeout and the queue behind it keeps filling.
var (
	retryFirst = 100 * time.Millisecond
	retryMax   = 2 * time.Second
)

// Config says how to reach a collector.
type Config struct {
	Endpoint string // host:port, or a URL (http:// means plaintext)
	Insecure bool   // plaintext gRPC
	CAFile   string // PEM roots to verify the collector
	// ClientCert and ClientKey are PEM files of the certificate golens
	// presents to a collector that asks for one (mutual TLS).
	ClientCert, ClientKey string
	Headers               map[string]string // sent with every export, e.g. authentication
	Compression           string            // "gzip", or "" / "none"
	Timeout               time.Duration     // of one export, retries included; none when zero
}

// Client sends already encoded export requests to one collector.
type Client struct {
	target  string
	conn    *grpc.ClientConn
	md      metadata.MD
	timeout time.Duration
	options []grpc.CallOption

	// stop aborts exports still running (Abort, Close).
	stop  context.Context
	abort context.CancelFunc
}

// Dial makes the client connection, which connects lazily: an unreachable
// collector fails exports, not this.
func Dial(c Config) (*Client, error) {
	tlsCfg, err := ClientTLS(c.CAFile, c.ClientCert, c.ClientKey)
	if err != nil {
		return nil, err
	}
	target, creds, err := Connection(c.Endpoint, c.Insecure, tlsCfg)
	if err != nil {
		return nil, err
	}
	compressor, err := Compressor(c.Compression)
	if err != nil {
		return nil, err
	}
	options := []grpc.CallOption{grpc.ForceCodecV2(rawCodec{})}
	if compressor != "" {
		options = append(options, grpc.UseCompressor(compressor))
	}
	conn, err := grpc.NewClient(target,
		grpc.WithTransportCredentials(creds),
		grpc.WithUserAgent("golens/"+buildinfo.Version))
	if err != nil {
		return nil, fmt.Errorf("otlp exporter for %s: %w", target, err)
	}
	cl := &Client{target: target, conn: conn, timeout: c.Timeout, options: options}
	if len(c.Headers) > 0 {
		cl.md = metadata.New(c.Headers)
	}
	cl.stop, cl.abort = context.WithCancel(context.Background())
	return cl, nil
}

// Target is the collector's gRPC target, for messages.
func (c *Client) Target() string { return c.target }

// Export calls method (a collector service's Export) with req, a request
// already in wire format, and decodes the reply into resp. Transient
// failures are retried with back-off while the export's time lasts; it
// returns how many attempts it made.
func (c *Client) Export(ctx context.Context, method string, req []byte, resp proto.Message) (attempts int, err error) {
	var cancel context.CancelFunc
	if c.timeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
	} else {
		ctx, cancel = context.WithCancel(ctx)
	}
	defer cancel()
	defer context.AfterFunc(c.stop, cancel)()
	if c.md != nil {
		md := c.md
		if out, ok := metadata.FromOutgoingContext(ctx); ok {
			md = metadata.Join(md, out)
		}
		ctx = metadata.NewOutgoingContext(ctx, md)
	}

	wait := retryFirst
	for attempt := 1; ; attempt++ {
		err := c.conn.Invoke(ctx, method, rawRequest(req), resp, c.options...)
		if err == nil {
			return attempt, nil
		}
		again, hint := retryable(err)
		if !again || ctx.Err() != nil {
			return attempt, err
		}
		// Jitter keeps a fleet of agents from retrying in step.
		d := wait/2 + rand.N(wait/2+1)
		if hint > 0 {
			d = hint
		}
		if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < d {
			return attempt, err
		}
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return attempt, err
		}
		wait = min(2*wait, retryMax)
	}
}

// Abort ends the exports still running, as if their time had run out.
func (c *Client) Abort() { c.abort() }

// Close aborts the exports still running and closes the connection.
func (c *Client) Close() error {
	c.abort()
	return c.conn.Close()
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

// rawRequest is an export request already in wire format.
type rawRequest []byte

// rawCodec sends a rawRequest as it is and decodes replies with the
// generated types. It names itself "proto" so the content type is the
// application/grpc+proto every collector expects.
type rawCodec struct{}

// Marshal copies the request into a buffer of requestBuffers: gRPC may
// still be writing (or keeping for a retry) the bytes after Invoke returns,
// and the encoder reuses its buffer for the next batch.
func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	b, ok := v.(rawRequest)
	if !ok {
		return nil, fmt.Errorf("raw codec: cannot marshal %T", v)
	}
	return mem.BufferSlice{mem.Copy(b, requestBuffers)}, nil
}

// requestBuffers holds the copies of export requests gRPC has released.
// gRPC's default pool is no fit for them: a batch (a few hundred KiB)
// lands in its 1 MiB tier, which zeroes all of a buffer on every Get, and
// its sync.Pool empties at each GC, so the next batch allocates a fresh
// MiB. At 8k spans/s that zeroing was ~5-7% of the agent's CPU profile
// (end to end, within the run-to-run noise). A copy overwrites every byte
// it is given, so these buffers are handed out dirty.
var requestBuffers = &bufferList{max: 4, largest: 16 << 20}

// bufferList is a mem.BufferPool of a few buffers kept across GCs.
type bufferList struct {
	mu      sync.Mutex
	free    []*[]byte
	max     int // buffers kept
	largest int // a buffer of a larger capacity is not kept
}

// Get returns a buffer of length bytes, its content left as it was.
func (l *bufferList) Get(length int) *[]byte {
	l.mu.Lock()
	for i := len(l.free) - 1; i >= 0; i-- {
		if b := l.free[i]; cap(*b) >= length {
			l.free = slices.Delete(l.free, i, i+1)
			l.mu.Unlock()
			*b = (*b)[:length]
			return b
		}
	}
	l.mu.Unlock()
	// Room to grow: the next batch may be a little larger.
	b := make([]byte, length, length+length/4)
	return &b
}

// Put keeps b for a later Get, unless enough are kept; then it keeps the
// larger of b and the smallest kept one.
func (l *bufferList) Put(b *[]byte) {
	if cap(*b) > l.largest {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.free) < l.max {
		l.free = append(l.free, b)
		return
	}
	small := 0
	for i, f := range l.free {
		if cap(*f) < cap(*l.free[small]) {
			small = i
		}
	}
	if cap(*b) > cap(*l.free[small]) {
		l.free[small] = b
	}
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
