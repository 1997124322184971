package metrics

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// Limits of every HTTP listener golens opens (--metrics-addr,
// --sampling-server-addr, --pprof-addr). Their clients are scrapers, the
// kubelet's probes, Jaeger SDKs and an operator's curl: small requests
// without bodies. A client slower than this, or idle longer, is cut off, so
// a few stalled connections cannot hold the agent's goroutines and sockets.
const (
	// ReadHeaderTimeout bounds the request line and headers, however slowly
	// they trickle in (slowloris).
	ReadHeaderTimeout = 5 * time.Second
	// ReadTimeout bounds the whole request, body included.
	ReadTimeout = 10 * time.Second
	// WriteTimeout bounds the answer, from the end of the headers read: a
	// scraper that stops reading a large /metrics is cut off.
	WriteTimeout = 30 * time.Second
	// IdleTimeout closes a kept-alive connection that sends nothing.
	IdleTimeout = 60 * time.Second
	// MaxHeaderBytes is far above what a scrape or a probe sends (a bearer
	// token included).
	MaxHeaderBytes = 16 << 10
	// PprofWriteTimeout lets /debug/pprof/profile and /trace run for up to
	// their ?seconds= (30 by default; net/http/pprof refuses a duration at or
	// above the server's WriteTimeout).
	PprofWriteTimeout = 2 * time.Minute
)

// NewHTTPServer is the http.Server of one of golens' own listeners, with the
// limits above.
func NewHTTPServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       ReadTimeout,
		WriteTimeout:      WriteTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
	}
}

// Serve serves srv on ln until ctx is cancelled, then gives the requests in
// flight a second to finish.
func Serve(ctx context.Context, srv *http.Server, ln net.Listener) error {
	stopped := make(chan struct{})
	defer close(stopped)
	go func() {
		select {
		case <-ctx.Done():
		case <-stopped:
			return
		}
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if srv.Shutdown(sctx) != nil {
			srv.Close()
		}
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// NewPprofServer serves Go's profiles of golens itself at /debug/pprof/, and
// nothing else: a goroutine dump shows the targets' paths and peers in
// flight, so it has its own listener (--pprof-addr, loopback by default),
// never the metrics one.
func NewPprofServer() *http.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := NewHTTPServer(mux)
	srv.WriteTimeout = PprofWriteTimeout
	return srv
}
