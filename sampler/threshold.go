package sampler

import (
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// TraceID is a W3C trace id; an OpenTelemetry trace.TraceID converts to it.
type TraceID [16]byte

// randomBits is how many bits of a trace id W3C Trace Context Level 2
// promises are random: the rightmost 7 bytes.
const randomBits = 56

// Randomness returns the trace id's rightmost 56 bits, the randomness the
// OpenTelemetry consistent-probability scheme compares with a threshold.
func (id TraceID) Randomness() uint64 {
	return binary.BigEndian.Uint64(id[8:]) & (1<<randomBits - 1)
}

// String returns the id as 32 lowercase hex digits, as in a traceparent.
func (id TraceID) String() string {
	return fmt.Sprintf("%032x", id[:])
}

// Threshold is an OpenTelemetry rejection threshold: of the 2^56 possible
// randomness values, the ones below it are dropped. Zero keeps everything.
type Threshold uint64

// NeverThreshold drops every trace. Probability zero is not a form of
// probability sampling, so it has no th encoding.
const NeverThreshold Threshold = 1 << randomBits

// thresholdDigits is the precision OpenTelemetry SDKs are recommended to use:
// four significant hex digits, plus one for every leading 'f' that a small
// probability puts in front of them.
const thresholdDigits = 4

// ThresholdFor returns the threshold that keeps a fraction p of traces,
// rounded the way the OpenTelemetry tracestate probability sampling
// specification recommends, so the th value golens writes is short and the
// decision it makes is exactly the one that th value describes.
func ThresholdFor(p float64) Threshold {
	switch {
	case math.IsNaN(p) || p <= 0:
		return NeverThreshold
	case p >= 1:
		return 0
	}
	// p·2^56 is exact in float64 (a power-of-two scaling), so the only
	// rounding is to an integer here and to the chosen precision below.
	keep := uint64(math.Round(math.Ldexp(p, randomBits)))
	if keep == 0 {
		keep = 1 // the smallest probability there is, 2^-56
	}
	t := uint64(1)<<randomBits - keep

	_, exp := math.Frexp(p) // p = m·2^exp, m in [0.5, 1), exp <= 0 here
	digits := min(randomBits/4, thresholdDigits+(-exp)/4)
	unit := uint64(1) << (4 * (randomBits/4 - digits))
	t = (t + unit/2) / unit * unit
	if t >= 1<<randomBits {
		t = 1<<randomBits - unit
	}
	return Threshold(t)
}

// Keep reports whether a trace with this id passes the threshold.
func (t Threshold) Keep(id TraceID) bool {
	return id.Randomness() >= uint64(t)
}

// Probability returns the fraction of traces the threshold keeps.
func (t Threshold) Probability() float64 {
	if t >= NeverThreshold {
		return 0
	}
	return math.Ldexp(float64(uint64(NeverThreshold-t)), -randomBits)
}

// String returns the th value: 14 hex digits with the trailing zeros
// removed ("0" for keep-all), or "" for NeverThreshold, which has none.
func (t Threshold) String() string {
	if t >= NeverThreshold {
		return ""
	}
	if t == 0 {
		return "0"
	}
	return strings.TrimRight(fmt.Sprintf("%014x", uint64(t)), "0")
}

// TraceState returns the tracestate list member that records the threshold,
// "ot=th:…", or "" for NeverThreshold.
func (t Threshold) TraceState() string {
	if s := t.String(); s != "" {
		return "ot=th:" + s
	}
	return ""
}

// ParseThreshold reads a th value (1 to 14 hex digits, trailing zeros
// implied), as found in an incoming tracestate.
func ParseThreshold(s string) (Threshold, error) {
	if len(s) == 0 || len(s) > randomBits/4 {
		return 0, fmt.Errorf("th value %q: want 1 to %d hex digits", s, randomBits/4)
	}
	v, err := strconv.ParseUint(s, 16, 64)
	if err != nil {
		return 0, fmt.Errorf("th value %q: %w", s, err)
	}
	return Threshold(v << (4 * (randomBits/4 - len(s)))), nil
}
