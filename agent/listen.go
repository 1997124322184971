package agent

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"

	"golang.org/x/sync/errgroup"

	"github.com/golens/golens/metrics"
	"github.com/golens/golens/sampler"
)

// listeners are the agent's own HTTP endpoints, bound by New so that a busy
// port is reported at start-up, and served by Run.
type listeners struct {
	metrics  *metrics.Server // /metrics, /healthz, /readyz
	pprof    net.Listener    // --pprof; nil without
	sampling net.Listener    // Jaeger remote sampling; nil without
	smp      http.Handler
}

// open binds every listener cfg asks for; it logs the one it cannot bind.
func (l *listeners) open(cfg Config, met *metrics.Metrics, smp *sampler.Sampler, log *slog.Logger) error {
	var err error
	if l.metrics, err = met.Listen(cfg.MetricsAddr); err != nil {
		log.Error("cannot serve metrics", "addr", cfg.MetricsAddr, "err", err)
		return err
	}
	if cfg.Pprof {
		if l.pprof, err = net.Listen("tcp", cfg.PprofAddr); err != nil {
			log.Error("cannot serve pprof", "addr", cfg.PprofAddr, "err", err)
			return err
		}
		if !loopback(l.pprof.Addr()) {
			log.Warn("pprof served beyond loopback: whoever reaches it reads golens' goroutine stacks and memory profile", "addr", l.pprof.Addr().String())
		}
	}
	if cfg.SamplingServerAddr != "" {
		if l.sampling, err = net.Listen("tcp", cfg.SamplingServerAddr); err != nil {
			log.Error("cannot serve remote sampling", "addr", cfg.SamplingServerAddr, "err", err)
			return err
		}
		l.smp = smp.Handler()
	}
	return nil
}

// serve serves every bound listener in g until ctx is done.
func (l *listeners) serve(ctx context.Context, g *errgroup.Group) {
	g.Go(func() error { return l.metrics.Serve(ctx) })
	if l.sampling != nil {
		mux := http.NewServeMux()
		mux.Handle("/sampling", l.smp)
		mux.Handle("/", l.smp)
		g.Go(func() error { return metrics.Serve(ctx, metrics.NewHTTPServer(mux), l.sampling) })
	}
	if l.pprof != nil {
		g.Go(func() error { return metrics.Serve(ctx, metrics.NewPprofServer(), l.pprof) })
	}
}

// close closes the listeners that were bound but never served.
func (l *listeners) close() error {
	var errs []error
	if l.metrics != nil {
		errs = append(errs, l.metrics.Close())
	}
	for _, ln := range []net.Listener{l.pprof, l.sampling} {
		if ln != nil {
			errs = append(errs, ln.Close())
		}
	}
	return errors.Join(errs...)
}

// loopback reports whether a is reachable from this host only.
func loopback(a net.Addr) bool {
	tcp, ok := a.(*net.TCPAddr)
	return ok && tcp.IP.IsLoopback()
}
