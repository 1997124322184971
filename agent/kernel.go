package agent

import (
	"cmp"
	"log/slog"

	"github.com/golens/golens/probes/kernel"
)

// logKernel says, one line each, which kernel features are missing and
// what that disables; an ErrKernel error, after one error line, when golens
// cannot run.
func logKernel(log *slog.Logger, kern kernel.Report, inject bool) error {
	for _, res := range kern {
		switch res.State {
		case kernel.Missing:
			log.Warn("kernel feature missing", "feature", res.Name, "since", cmp.Or(res.Since, "?"), "effect", res.Without)
		case kernel.Unknown:
			log.Warn("kernel feature not probed", "feature", res.Name, "err", res.Err)
		}
	}
	if err := kern.Check(inject); err != nil {
		log.Error("cannot run on this kernel", "kernel", kernel.Release(), "floor", "Linux "+kernel.Floor(), "err", err)
		return classed{ErrKernel, err}
	}
	return nil
}

// injectOnKernel decides what --inject-context asks of a kernel golens
// runs on (logKernel passed it): auto turns off where the kernel lacks a
// feature the socket programs need, and says why; on and off stay. A
// feature whose probe could not tell turns nothing off: the manager's
// attach of the socket programs is the test then.
func injectOnKernel(mode InjectMode, kern kernel.Report) (InjectMode, error) {
	if mode != InjectAuto {
		return mode, nil
	}
	if err := kern.Check(true); err != nil {
		return InjectOff, err
	}
	return InjectAuto, nil
}
