package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTick is the unit of utime and stime in /proc/PID/stat: USER_HZ, which
// is 100 on every Linux that golens supports.
const clockTick = 10 * time.Millisecond

// cpuTime is the CPU a process has used so far (user plus system), read from
// /proc/PID/stat. It only moves in clock ticks, so a difference is exact to
// ±1 tick.
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	ticks, err := parseStatTicks(string(b))
	if err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return time.Duration(ticks) * clockTick, nil
}

// statFields returns the fields of /proc/PID/stat from field 3 (state) on.
// The command name (field 2) may hold spaces and parentheses, so fields are
// counted from its closing parenthesis.
func statFields(stat string) ([]string, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return nil, fmt.Errorf("no command name")
	}
	return strings.Fields(stat[i+1:]), nil
}

// parseStatTicks returns utime+stime (fields 14 and 15) from the text of
// /proc/PID/stat.
func parseStatTicks(stat string) (uint64, error) {
	f, err := statFields(stat)
	if err != nil {
		return 0, err
	}
	if len(f) < 13 {
		return 0, fmt.Errorf("%d fields after the command name, want at least 13", len(f))
	}
	utime, err := strconv.ParseUint(f[11], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("utime: %w", err)
	}
	stime, err := strconv.ParseUint(f[12], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("stime: %w", err)
	}
	return utime + stime, nil
}

// parseStatState returns the state letter (field 3) of /proc/PID/stat:
// R, S, D, Z for a zombie, and so on.
func parseStatState(stat string) (byte, error) {
	f, err := statFields(stat)
	if err != nil {
		return 0, err
	}
	if len(f) == 0 || len(f[0]) != 1 {
		return 0, fmt.Errorf("no state after the command name")
	}
	return f[0][0], nil
}

// peakRSS is VmHWM from /proc/PID/status: the most resident memory the
// process has had, in bytes.
func peakRSS(pid int) (uint64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "VmHWM:"); ok {
			return parseKB(v)
		}
	}
	if err := s.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("/proc/%d/status has no VmHWM", pid)
}

// parseKB reads a /proc/PID/status size such as "  20480 kB" as bytes.
func parseKB(v string) (uint64, error) {
	f := strings.Fields(v)
	if len(f) != 2 || f[1] != "kB" {
		return 0, fmt.Errorf("size %q is not in kB", strings.TrimSpace(v))
	}
	n, err := strconv.ParseUint(f[0], 10, 64)
	if err != nil {
		return 0, err
	}
	return n * 1024, nil
}

// metricValue finds an unlabelled sample in Prometheus text exposition.
func metricValue(text, name string) (float64, error) {
	for _, line := range strings.Split(text, "\n") {
		v, ok := strings.CutPrefix(line, name+" ")
		if !ok {
			continue
		}
		return strconv.ParseFloat(strings.TrimSpace(v), 64)
	}
	return 0, fmt.Errorf("metric %s not exported", name)
}

// seriesWithPrefix returns every sample in Prometheus text exposition whose
// metric name starts with prefix, keyed by the name and its labels as
// written there (golens_x_total{reason="a"}).
func seriesWithPrefix(text, prefix string) map[string]float64 {
	m := map[string]float64{}
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		end := strings.IndexAny(line, "{ ")
		if end < 0 {
			continue
		}
		if line[end] == '{' {
			// Label values are quoted and may hold spaces.
			rb := strings.LastIndexByte(line, '}')
			if rb < end {
				continue
			}
			end = rb + 1
		}
		f := strings.Fields(line[end:])
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			continue
		}
		m[line[:end]] = v
	}
	return m
}

// seriesDelta is after less before, per series; a series new in after
// counts from 0.
func seriesDelta(before, after map[string]float64) map[string]float64 {
	d := make(map[string]float64, len(after))
	for k, v := range after {
		d[k] = v - before[k]
	}
	return d
}

// sumSeries adds up the series of metric name, whatever their labels; ok
// false when there is none.
func sumSeries(series map[string]float64, name string) (sum float64, ok bool) {
	for k, v := range series {
		if n, _, _ := strings.Cut(k, "{"); n == name {
			sum += v
			ok = true
		}
	}
	return sum, ok
}
