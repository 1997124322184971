// Package otlp speaks OTLP: the encoding of golens' spans into
// ExportTraceServiceRequest bytes (traces.go).
package otlp

import (
	"math"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/golens/golens/probes/event"
	"github.com/golens/golens/span"
)

// Field numbers of the OTLP messages the encoder writes, from
// opentelemetry/proto/{collector/trace,trace,common,resource}/v1.
const (
	// ExportTraceServiceRequest
	fReqResourceSpans = 1

	// ResourceSpans
	fRSResource   = 1
	fRSScopeSpans = 2
	fRSSchemaURL  = 3

	// Resource
	fResAttributes = 1

	// ScopeSpans
	fSSScope     = 1
	fSSSpans     = 2
	fSSSchemaURL = 3

	// InstrumentationScope
	fScopeName       = 1
	fScopeVersion    = 2
	fScopeAttributes = 3

	// Span
	fSpanTraceID      = 1
	fSpanSpanID       = 2
	fSpanTraceState   = 3
	fSpanParentSpanID = 4
	fSpanName         = 5
	fSpanKind         = 6
	fSpanStart        = 7
	fSpanEnd          = 8
	fSpanAttributes   = 9
	fSpanStatus       = 15
	fSpanFlags        = 16

	// Status
	fStatusMessage = 2
	fStatusCode    = 3

	// KeyValue, and KeyValueList / ArrayValue whose one field is values = 1
	fKVKey    = 1
	fKVValue  = 2
	fListItem = 1

	// AnyValue
	fAnyString = 1
	fAnyBool   = 2
	fAnyInt    = 3
	fAnyDouble = 4
	fAnyArray  = 5
	fAnyKVList = 6
	fAnyBytes  = 7
)

// OTLP SpanFlags bits above the 8 bits of W3C trace flags: the first says
// the second is meaningful, the second that the parent span context came
// from another process. Set as otlptrace's exporter sets them.
const (
	flagHasIsRemote = 0x100
	flagIsRemote    = 0x200
)

// Room reserved for a length prefix before the body is written, chosen by
// the size a message usually has so that closing it rarely moves the body:
// attributes fit in 127 bytes, a span in 16 KiB, a batch's ResourceSpans
// in 256 MiB.
const (
	lenSmall = 1
	lenSpan  = 2
	lenBatch = 4
)

// TraceEncoder writes ExportTraceServiceRequest messages straight from
// golens' spans, without building the generated protobuf structs: the
// buffer and the grouping tables are kept and reused from one batch to the
// next, so a steady stream of batches allocates (almost) nothing. The zero
// value is ready; one encoder serves one batch at a time.
type TraceEncoder struct {
	buf []byte

	// Spans grouped by resource, then by scope, as linked lists over
	// indices into these slices (-1 ends a list); cleared per batch.
	resources []resourceGroup
	scopes    []scopeGroup
	next      []int32 // next span of the same scope group
	byPtr     map[*span.Resource]int32
	byAttrs   map[resourceKey]int32
	// attrs is the span's attributes rendered, reused span after span.
	attrs []attribute.KeyValue
}

type resourceGroup struct {
	res         *span.Resource
	first, last int32 // scope groups
}

type scopeGroup struct {
	scope       *span.Scope
	next        int32 // next scope group of the same resource
	first, last int32 // spans
}

// resourceKey tells resources apart as otlptrace does, by their attribute
// set, and also by schema URL since ResourceSpans carries one.
type resourceKey struct {
	attrs  attribute.Distinct
	schema string
}

// noResource stands for a span's nil Resource: an empty one.
var noResource = &span.Resource{}

// Encode returns the ExportTraceServiceRequest for spans. The bytes are
// the encoder's own and valid until the next call.
func (e *TraceEncoder) Encode(spans []*span.Span) []byte {
	e.group(spans)
	e.buf = e.buf[:0]
	for _, rg := range e.resources {
		rs := e.open(fReqResourceSpans, lenBatch)
		r := e.open(fRSResource, lenSmall)
		for it := rg.res.Attrs.Iter(); it.Next(); {
			e.keyValue(fResAttributes, it.Attribute())
		}
		e.close(r, lenSmall)
		for g := rg.first; g >= 0; g = e.scopes[g].next {
			sg := &e.scopes[g]
			ss := e.open(fRSScopeSpans, lenBatch)
			e.scope(sg.scope)
			for i := sg.first; i >= 0; i = e.next[i] {
				e.span(spans[i])
			}
			if sg.scope != nil {
				e.string(fSSSchemaURL, sg.scope.SchemaURL)
			}
			e.close(ss, lenBatch)
		}
		e.string(fRSSchemaURL, rg.res.SchemaURL)
		e.close(rs, lenBatch)
	}
	return e.buf
}

// Reset lets go of a buffer grown past keep bytes, so that one odd huge
// batch does not pin its memory for the agent's lifetime.
func (e *TraceEncoder) Reset(keep int) {
	if cap(e.buf) > keep {
		e.buf = nil
	}
}

// group fills the resource and scope lists for spans, in the order each
// resource and scope first appears.
func (e *TraceEncoder) group(spans []*span.Span) {
	if e.byPtr == nil {
		e.byPtr = make(map[*span.Resource]int32)
		e.byAttrs = make(map[resourceKey]int32)
	}
	clear(e.byPtr)
	clear(e.byAttrs)
	e.resources = e.resources[:0]
	e.scopes = e.scopes[:0]
	e.next = e.next[:0]

	// Consecutive spans nearly always share resource and scope: remember
	// the last ones and skip the map look-ups for them.
	var (
		lastRes   *span.Resource
		lastScope *span.Scope
		ri, gi    int32 = -1, -1
	)
	for i, s := range spans {
		e.next = append(e.next, -1)
		if s == nil {
			continue
		}
		res := s.Resource
		if res == nil {
			res = noResource
		}
		if ri < 0 || res != lastRes {
			ri = e.resourceIndex(res)
			lastRes = res
			gi = -1
		}
		if gi < 0 || !s.Scope.Same(lastScope) {
			gi = e.scopeIndex(ri, s.Scope)
			lastScope = s.Scope
		}
		sg := &e.scopes[gi]
		if sg.first < 0 {
			sg.first = int32(i)
		} else {
			e.next[sg.last] = int32(i)
		}
		sg.last = int32(i)
	}
}

// resourceIndex finds the group of res: by pointer first, as the agent
// keeps one *Resource per process, then by what the resource holds.
func (e *TraceEncoder) resourceIndex(res *span.Resource) int32 {
	if ri, ok := e.byPtr[res]; ok {
		return ri
	}
	k := resourceKey{res.Attrs.Equivalent(), res.SchemaURL}
	ri, ok := e.byAttrs[k]
	if !ok {
		ri = int32(len(e.resources))
		e.resources = append(e.resources, resourceGroup{res: res, first: -1, last: -1})
		e.byAttrs[k] = ri
	}
	e.byPtr[res] = ri
	return ri
}

// scopeIndex finds the group of scope under resource ri. A resource has
// one scope or a few (one per instrumentation library): a scan beats
// hashing three strings.
func (e *TraceEncoder) scopeIndex(ri int32, scope *span.Scope) int32 {
	rg := &e.resources[ri]
	for gi := rg.first; gi >= 0; gi = e.scopes[gi].next {
		if e.scopes[gi].scope.Same(scope) {
			return gi
		}
	}
	gi := int32(len(e.scopes))
	e.scopes = append(e.scopes, scopeGroup{scope: scope, next: -1, first: -1, last: -1})
	if rg.first < 0 {
		rg.first = gi
	} else {
		e.scopes[rg.last].next = gi
	}
	rg.last = gi
	return gi
}

func (e *TraceEncoder) scope(s *span.Scope) {
	// otlptrace leaves the scope out when it is the zero value.
	if s.Same(nil) {
		return
	}
	m := e.open(fSSScope, lenSmall)
	e.string(fScopeName, s.Name)
	e.string(fScopeVersion, s.Version)
	for it := s.Attrs.Iter(); it.Next(); {
		e.keyValue(fScopeAttributes, it.Attribute())
	}
	e.close(m, lenSmall)
}

func (e *TraceEncoder) span(s *span.Span) {
	m := e.open(fSSSpans, lenSpan)
	e.bytes(fSpanTraceID, s.TraceID[:])
	e.bytes(fSpanSpanID, s.SpanID[:])
	e.string(fSpanTraceState, s.TraceState)
	if s.HasParent() {
		e.bytes(fSpanParentSpanID, s.Parent[:])
	}
	e.string(fSpanName, s.Name)
	e.uint(fSpanKind, uint64(spanKind(s.Kind)))
	e.fixed64(fSpanStart, unixNano(s.Start))
	e.fixed64(fSpanEnd, unixNano(s.End))
	if s.Source != nil {
		// A Source's keys and strings are valid UTF-8 (span.Source):
		// checking them again was ~10% of the agent's CPU profile.
		e.attrs = s.Source.AppendAttrs(e.attrs[:0])
		for _, kv := range e.attrs {
			if !e.scalarKeyValue(fSpanAttributes, kv, true) {
				e.keyValue(fSpanAttributes, kv)
			}
		}
	}
	for _, kv := range s.Attrs {
		e.keyValue(fSpanAttributes, kv)
	}
	// The status goes out even when unset, as otlptrace sends it.
	sm := e.open(fSpanStatus, lenSmall)
	e.string(fStatusMessage, s.StatusMessage)
	e.uint(fStatusCode, uint64(statusCode(s.Status)))
	e.close(sm, lenSmall)
	e.fixed32(fSpanFlags, spanFlags(s))
	e.close(m, lenSpan)
}

// spanFlags are the span's W3C trace flags plus whether its parent is
// remote. A root says "not remote", as otlptrace does for an invalid
// parent context.
func spanFlags(s *span.Span) uint32 {
	f := uint32(s.Flags) | flagHasIsRemote
	if s.HasParent() && s.ParentRemote {
		f |= flagIsRemote
	}
	return f
}

func spanKind(k span.Kind) span.Kind {
	// Anything beyond OTLP's kinds is unspecified.
	if k > span.KindConsumer {
		return span.KindUnspecified
	}
	return k
}

func statusCode(c span.Code) span.Code {
	if c > span.Error {
		return span.Unset
	}
	return c
}

func unixNano(t time.Time) uint64 { return uint64(max(0, t.UnixNano())) }

// keyValue writes one KeyValue as field num.
func (e *TraceEncoder) keyValue(num protowire.Number, kv attribute.KeyValue) {
	if e.scalarKeyValue(num, kv, false) {
		return
	}
	m := e.open(num, lenSmall)
	e.string(fKVKey, string(kv.Key))
	e.value(fKVValue, kv.Value)
	e.close(m, lenSmall)
}

// scalarKeyValue writes kv when its value is a single string, number or
// bool, whose sizes are known up front: the common case, without
// back-patching lengths. It reports whether it did. valid says kv's key and
// string are valid UTF-8 already; else they are made so.
func (e *TraceEncoder) scalarKeyValue(num protowire.Number, kv attribute.KeyValue, valid bool) bool {
	var (
		inner int    // the AnyValue's one field, tag included
		str   string // the value when a string, made valid as anyString would
	)
	switch kv.Value.Type() {
	case attribute.STRING:
		str = kv.Value.AsString()
		if !valid {
			str = event.ValidUTF8(str)
		}
		n := len(str)
		inner = 1 + protowire.SizeVarint(uint64(n)) + n
	case attribute.INT64:
		inner = 1 + protowire.SizeVarint(uint64(kv.Value.AsInt64()))
	case attribute.BOOL:
		inner = 2
	case attribute.FLOAT64:
		inner = 9
	default:
		return false
	}
	key := string(kv.Key)
	if !valid {
		key = event.ValidUTF8(key)
	}
	body := 1 + protowire.SizeVarint(uint64(inner)) + inner
	if len(key) > 0 {
		body += 1 + protowire.SizeVarint(uint64(len(key))) + len(key)
	}
	e.buf = protowire.AppendTag(e.buf, num, protowire.BytesType)
	e.buf = protowire.AppendVarint(e.buf, uint64(body))
	e.validString(fKVKey, key) // made valid above: once is enough
	e.buf = protowire.AppendTag(e.buf, fKVValue, protowire.BytesType)
	e.buf = protowire.AppendVarint(e.buf, uint64(inner))
	switch kv.Value.Type() {
	case attribute.STRING:
		e.buf = protowire.AppendTag(e.buf, fAnyString, protowire.BytesType)
		e.buf = protowire.AppendString(e.buf, str)
	case attribute.INT64:
		e.anyInt(kv.Value.AsInt64())
	case attribute.BOOL:
		e.buf = protowire.AppendTag(e.buf, fAnyBool, protowire.VarintType)
		e.buf = protowire.AppendVarint(e.buf, protowire.EncodeBool(kv.Value.AsBool()))
	case attribute.FLOAT64:
		e.anyDouble(kv.Value.AsFloat64())
	}
	return true
}

// value writes v as the AnyValue field num. A oneof member is written even
// when it holds its zero value: that is how a reader tells false or 0 from
// no value at all.
func (e *TraceEncoder) value(num protowire.Number, v attribute.Value) {
	m := e.open(num, lenSmall)
	switch v.Type() {
	case attribute.BOOL:
		e.anyBool(v.AsBool())
	case attribute.INT64:
		e.anyInt(v.AsInt64())
	case attribute.FLOAT64:
		e.anyDouble(v.AsFloat64())
	case attribute.STRING:
		e.anyString(v.AsString())
	case attribute.BOOLSLICE:
		encodeArray(e, v.AsBoolSlice(), e.anyBool)
	case attribute.INT64SLICE:
		encodeArray(e, v.AsInt64Slice(), e.anyInt)
	case attribute.FLOAT64SLICE:
		encodeArray(e, v.AsFloat64Slice(), e.anyDouble)
	case attribute.STRINGSLICE:
		encodeArray(e, v.AsStringSlice(), e.anyString)
	case attribute.BYTESLICE:
		e.buf = protowire.AppendTag(e.buf, fAnyBytes, protowire.BytesType)
		e.buf = protowire.AppendBytes(e.buf, v.AsByteSlice())
	case attribute.SLICE:
		a := e.open(fAnyArray, lenSmall)
		for _, item := range v.AsSlice() {
			e.value(fListItem, item)
		}
		e.close(a, lenSmall)
	case attribute.MAP:
		l := e.open(fAnyKVList, lenSmall)
		for _, kv := range v.AsMap() {
			e.keyValue(fListItem, kv)
		}
		e.close(l, lenSmall)
	case attribute.EMPTY:
		// An AnyValue with nothing set.
	default:
		// A type newer than this encoder: say so rather than drop the key,
		// as otlptrace does.
		e.anyString("INVALID")
	}
	e.close(m, lenSmall)
}

// encodeArray writes an ArrayValue of items, each an AnyValue written by
// put.
func encodeArray[T any](e *TraceEncoder, items []T, put func(T)) {
	a := e.open(fAnyArray, lenSmall)
	for _, x := range items {
		item := e.open(fListItem, lenSmall)
		put(x)
		e.close(item, lenSmall)
	}
	e.close(a, lenSmall)
}

func (e *TraceEncoder) anyBool(b bool) {
	e.buf = protowire.AppendTag(e.buf, fAnyBool, protowire.VarintType)
	e.buf = protowire.AppendVarint(e.buf, protowire.EncodeBool(b))
}

func (e *TraceEncoder) anyInt(n int64) {
	e.buf = protowire.AppendTag(e.buf, fAnyInt, protowire.VarintType)
	e.buf = protowire.AppendVarint(e.buf, uint64(n))
}

func (e *TraceEncoder) anyDouble(f float64) {
	e.buf = protowire.AppendTag(e.buf, fAnyDouble, protowire.Fixed64Type)
	e.buf = protowire.AppendFixed64(e.buf, math.Float64bits(f))
}

// Every string goes out as valid UTF-8: a receiver built on protobuf-go
// rejects the whole request for one invalid string field. The decoders
// already made the target's strings valid; this is the last line, cheap
// for the valid (nearly always ASCII) strings it sees.

func (e *TraceEncoder) anyString(s string) {
	e.buf = protowire.AppendTag(e.buf, fAnyString, protowire.BytesType)
	e.buf = protowire.AppendString(e.buf, event.ValidUTF8(s))
}

// The scalar writers below leave out zero values, as proto3 does for
// fields without presence.

func (e *TraceEncoder) string(num protowire.Number, s string) {
	e.validString(num, event.ValidUTF8(s))
}

// validString is string for s already made valid UTF-8.
func (e *TraceEncoder) validString(num protowire.Number, s string) {
	if s == "" {
		return
	}
	e.buf = protowire.AppendTag(e.buf, num, protowire.BytesType)
	e.buf = protowire.AppendString(e.buf, s)
}

func (e *TraceEncoder) bytes(num protowire.Number, b []byte) {
	if len(b) == 0 {
		return
	}
	e.buf = protowire.AppendTag(e.buf, num, protowire.BytesType)
	e.buf = protowire.AppendBytes(e.buf, b)
}

func (e *TraceEncoder) uint(num protowire.Number, v uint64) {
	if v == 0 {
		return
	}
	e.buf = protowire.AppendTag(e.buf, num, protowire.VarintType)
	e.buf = protowire.AppendVarint(e.buf, v)
}

func (e *TraceEncoder) fixed64(num protowire.Number, v uint64) {
	if v == 0 {
		return
	}
	e.buf = protowire.AppendTag(e.buf, num, protowire.Fixed64Type)
	e.buf = protowire.AppendFixed64(e.buf, v)
}

func (e *TraceEncoder) fixed32(num protowire.Number, v uint32) {
	if v == 0 {
		return
	}
	e.buf = protowire.AppendTag(e.buf, num, protowire.Fixed32Type)
	e.buf = protowire.AppendFixed32(e.buf, v)
}

// open starts the embedded message (or packed bytes) field num, leaving
// width bytes for its length, and returns where its body starts.
func (e *TraceEncoder) open(num protowire.Number, width int) int {
	e.buf = protowire.AppendTag(e.buf, num, protowire.BytesType)
	for range width {
		e.buf = append(e.buf, 0)
	}
	return len(e.buf)
}

// close writes the length of the field that open(…, width) started at
// start. A body whose length needs more or fewer bytes than were left is
// moved, so the prefix is always the shortest varint, as proto.Marshal
// writes it.
func (e *TraceEncoder) close(start, width int) {
	n := len(e.buf) - start
	w := protowire.SizeVarint(uint64(n))
	if w > width {
		e.buf = append(e.buf, make([]byte, w-width)...)
	}
	if w != width {
		copy(e.buf[start-width+w:], e.buf[start:start+n])
	}
	protowire.AppendVarint(e.buf[:start-width], uint64(n))
	e.buf = e.buf[:start-width+w+n]
}
