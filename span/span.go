// Package span is golens' model of one finished span: what an event
// fills, the linker re-parents, the sampler decides on and the OTLP
// encoder writes. Plain values with no SDK behind them: building one
// costs its attribute slice and nothing else.
package span

import (
	"encoding/hex"
	"time"

	"go.opentelemetry.io/otel/attribute"
)

// TraceID is a W3C trace id.
type TraceID [16]byte

// SpanID is a W3C span (parent) id.
type SpanID [8]byte

// String returns the lowercase hex form used by traceparent.
func (t TraceID) String() string { return hex.EncodeToString(t[:]) }

// IsZero tells whether no id is set.
func (t TraceID) IsZero() bool { return t == TraceID{} }

// String returns the lowercase hex form used by traceparent.
func (s SpanID) String() string { return hex.EncodeToString(s[:]) }

// IsZero tells whether no id is set.
func (s SpanID) IsZero() bool { return s == SpanID{} }

// FlagSampled is the W3C trace flag "sampled".
const FlagSampled byte = 0x01

// Kind is the span's kind, numbered as OTLP's Span.SpanKind.
type Kind uint8

// The span kinds.
const (
	KindUnspecified Kind = iota
	KindInternal
	KindServer
	KindClient
	KindProducer
	KindConsumer
)

var kindNames = [...]string{"unspecified", "internal", "server", "client", "producer", "consumer"}

// String names the kind as the OpenTelemetry API does ("server").
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "unspecified"
}

// Code is the span's status code, numbered as OTLP's Status.StatusCode.
type Code uint8

// The status codes.
const (
	Unset Code = iota
	OK
	Error
)

// String names the code as the OpenTelemetry API does ("Error").
func (c Code) String() string {
	switch c {
	case OK:
		return "Ok"
	case Error:
		return "Error"
	}
	return "Unset"
}

// Span is one finished span.
type Span struct {
	TraceID TraceID
	SpanID  SpanID
	Flags   byte // the span's W3C trace flags
	// Parent is the parent span's id, zero for a root. ParentFlags are
	// the trace flags the parent came with; ParentRemote says it came
	// from another process (a valid incoming traceparent).
	Parent       SpanID
	ParentFlags  byte
	ParentRemote bool
	// TraceState is the W3C tracestate the span goes out with, as the
	// sampler wrote it; empty for none.
	TraceState string

	Name       string
	Kind       Kind
	Start, End time.Time
	Status     Code
	// StatusMessage says why, for Status Error only.
	StatusMessage string
	// Source, when set, gives the span's first attributes: what the span
	// was built of (an event) renders them when they are asked for, into a
	// buffer the asker reuses, so a span waiting for its trace or its
	// export keeps no attribute array alive for the GC to scan.
	Source Source
	// Attrs are the span's attributes after Source's. attribute.KeyValue
	// is the API's plain value: a string or number costs no allocation.
	Attrs []attribute.KeyValue

	Resource *Resource
	Scope    *Scope
}

// HasParent tells whether the span has a parent span.
func (s *Span) HasParent() bool { return !s.Parent.IsZero() }

// ParentSampled tells whether the parent came with the sampled flag.
func (s *Span) ParentSampled() bool { return s.ParentFlags&FlagSampled != 0 }

// Duration is how long the span lasted.
func (s *Span) Duration() time.Duration { return s.End.Sub(s.Start) }

// Source renders the attributes of what a span was built of. It must
// append the same attributes every time it is asked (what it reads does
// not change once the span is made), and their keys and strings must be
// valid UTF-8: the encoder does not check them again (an event's strings
// are made valid as they are decoded, probes.String).
type Source interface {
	AppendAttrs(dst []attribute.KeyValue) []attribute.KeyValue
}

// AppendAttrs appends the span's attributes, Source's then Attrs, to dst.
func (s *Span) AppendAttrs(dst []attribute.KeyValue) []attribute.KeyValue {
	if s.Source != nil {
		dst = s.Source.AppendAttrs(dst)
	}
	return append(dst, s.Attrs...)
}

// Attributes returns the span's attributes in a new slice.
func (s *Span) Attributes() []attribute.KeyValue { return s.AppendAttrs(nil) }

// Attr returns the value of the attribute key and whether the span has it.
func (s *Span) Attr(key attribute.Key) (attribute.Value, bool) {
	var buf [16]attribute.KeyValue
	for _, kv := range s.AppendAttrs(buf[:0]) {
		if kv.Key == key {
			return kv.Value, true
		}
	}
	return attribute.Value{}, false
}

// Resource is the entity that produced spans: one per watched process,
// shared by every span it makes.
type Resource struct {
	// Attrs are sorted by key, one value per key (as attribute.NewSet
	// keeps them).
	Attrs     attribute.Set
	SchemaURL string
	// Service is Attrs' service.name, kept apart: the sampler asks it
	// for every span.
	Service string
}

// NewResource builds a resource from attrs; a later value for the same
// key wins.
func NewResource(schemaURL string, attrs ...attribute.KeyValue) *Resource {
	r := &Resource{Attrs: attribute.NewSet(attrs...), SchemaURL: schemaURL}
	if v, ok := r.Attrs.Value("service.name"); ok {
		r.Service = v.AsString()
	}
	return r
}

// Scope is the instrumentation scope spans are reported under.
type Scope struct {
	Name, Version, SchemaURL string
	Attrs                    attribute.Set
}

// Same tells whether a and b describe the same scope; nil is the zero
// scope.
func (a *Scope) Same(b *Scope) bool {
	if a == b {
		return true
	}
	var za, zb Scope
	if a == nil {
		a = &za
	}
	if b == nil {
		b = &zb
	}
	return a.Name == b.Name && a.Version == b.Version && a.SchemaURL == b.SchemaURL &&
		a.Attrs.Equivalent() == b.Attrs.Equivalent()
}

// Flat returns s with its attributes all in Attrs and no Source: the span
// as a comparison or a print sees it.
func Flat(s Span) Span {
	s.Attrs, s.Source = s.Attributes(), nil
	return s
}
