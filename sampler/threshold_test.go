package sampler

import (
	"math"
	"testing"
)

func TestThresholdFor(t *testing.T) {
	// Expected th values: the OpenTelemetry specification's table for
	// 4-digit precision, plus a few values worked out by hand.
	tests := []struct {
		p    float64
		th   string
		prob float64 // what the encoded threshold actually keeps
	}{
		{1, "0", 1},
		{0.5, "8", 0.5},
		{0.25, "c", 0.25},
		{0.75, "4", 0.75},
		{0.125, "e", 0.125},
		{0.0625, "f", 0.0625},
		{1.0 / 3, "aaab", 0.3333282470703125},
		{0.2, "cccd", 0.1999969482421875},
		{0.1, "e666", 0.100006103515625},
		{0.9, "199a", 0.899993896484375},
		{0.01, "fd70a", 0.010000228881835938},
		{0.001, "ffbe77", 0.0009999871253967285},
		{0.0001, "fff9724", 0.00010000169277191162},
		{0.00001, "ffff583a", 1.00000761449337e-05},
		{0.000001, "ffffef39", 1.00000761449337e-06},
		{math.Ldexp(1, -56), "ffffffffffffff", math.Ldexp(1, -56)},
		{2, "0", 1},
		{0, "", 0},
		{-0.5, "", 0},
		{math.NaN(), "", 0},
	}
	for _, tt := range tests {
		th := ThresholdFor(tt.p)
		if got := th.String(); got != tt.th {
			t.Errorf("ThresholdFor(%v) = th:%s, want th:%s", tt.p, got, tt.th)
		}
		if got := th.Probability(); math.Abs(got-tt.prob) > 1e-15*max(1, 1/tt.prob) {
			t.Errorf("ThresholdFor(%v).Probability() = %v, want %v", tt.p, got, tt.prob)
		}
		if tt.th == "" {
			continue
		}
		back, err := ParseThreshold(tt.th)
		if err != nil || back != th {
			t.Errorf("ParseThreshold(%q) = %#x, %v; want %#x", tt.th, uint64(back), err, uint64(th))
		}
	}
}

func TestThresholdTraceState(t *testing.T) {
	tests := []struct {
		p    float64
		want string
	}{
		{1, "ot=th:0"},
		{0.1, "ot=th:e666"},
		{0.5, "ot=th:8"},
		{0, ""},
	}
	for _, tt := range tests {
		if got := ThresholdFor(tt.p).TraceState(); got != tt.want {
			t.Errorf("ThresholdFor(%v).TraceState() = %q, want %q", tt.p, got, tt.want)
		}
	}
}

func TestParseThresholdRejects(t *testing.T) {
	for _, s := range []string{"", "fffffffffffffff", "xyz", "-1", "+8"} {
		if _, err := ParseThreshold(s); err == nil {
			t.Errorf("ParseThreshold(%q) succeeded, want an error", s)
		}
	}
}

func TestKeepUsesRightmost56Bits(t *testing.T) {
	th := ThresholdFor(0.5) // 0x80000000000000
	tests := []struct {
		name string
		id   TraceID
		keep bool
	}{
		{"randomness equal to threshold is kept", TraceID{8: 0x00, 9: 0x80}, true},
		{"one below threshold is dropped", TraceID{8: 0xff, 9: 0x7f, 10: 0xff, 11: 0xff, 12: 0xff, 13: 0xff, 14: 0xff, 15: 0xff}, false},
		{"leading bytes do not count", TraceID{0: 0xff, 1: 0xff, 7: 0xff, 8: 0xff}, false},
		{"max randomness is kept", TraceID{9: 0xff, 10: 0xff, 11: 0xff, 12: 0xff, 13: 0xff, 14: 0xff, 15: 0xff}, true},
	}
	for _, tt := range tests {
		if got := th.Keep(tt.id); got != tt.keep {
			t.Errorf("%s: Keep(%s) = %v, want %v", tt.name, tt.id, got, tt.keep)
		}
	}
	if NeverThreshold.Keep(TraceID{9: 0xff, 10: 0xff, 11: 0xff, 12: 0xff, 13: 0xff, 14: 0xff, 15: 0xff}) {
		t.Error("NeverThreshold kept a trace")
	}
	if !Threshold(0).Keep(TraceID{}) {
		t.Error("threshold 0 dropped a trace")
	}
}
