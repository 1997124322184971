// Command httpserver is the target the end-to-end tests and the benchmark
// instrument: a plain net/http service that knows nothing of golens.
//
// It builds with every Go release from 1.21 on, so its routes use only
// patterns that every release's ServeMux understands.
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

var client = &http.Client{Timeout: 10 * time.Second}

// h2Client speaks HTTP/2 to HTTPS servers (the tests' self-signed ones).
var h2Client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
	TLSClientConfig:   &tls.Config{InsecureSkipVerify: true},
	ForceAttemptHTTP2: true,
}}

// h1sClient speaks HTTP/1.1 to HTTPS servers (no HTTP/2 offered).
var h1sClient = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
	TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
	TLSNextProto:    map[string]func(string, *tls.Conn) http.RoundTripper{},
}}

// h2cClient speaks HTTP/2 without TLS (prior knowledge), and serveH2C
// makes a server accept it besides HTTP/1.x: Go >= 1.24 only (h2c.go);
// nil before.
var (
	h2cClient *http.Client
	serveH2C  func(*http.Server)
)

// call GETs url and returns the status, or 502 when the request failed.
func call(ctx context.Context, url string) int { return callWith(ctx, url, "") }

func callWith(ctx context.Context, url, traceparent string) int {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return http.StatusBadRequest
	}
	if traceparent != "" {
		req.Header.Set("traceparent", traceparent)
	}
	c := client
	if strings.HasPrefix(url, "https://") {
		c = h2Client
	}
	// h1s://host/path: https://host/path over HTTP/1.1.
	if rest, ok := strings.CutPrefix(url, "h1s://"); ok {
		if req, err = http.NewRequestWithContext(ctx, http.MethodGet, "https://"+rest, nil); err != nil {
			return http.StatusBadRequest
		}
		if traceparent != "" {
			req.Header.Set("traceparent", traceparent)
		}
		c = h1sClient
	}
	// h2c://host/path: http://host/path over HTTP/2 without TLS.
	if rest, ok := strings.CutPrefix(url, "h2c://"); ok {
		if h2cClient == nil {
			return http.StatusNotImplemented
		}
		if req, err = http.NewRequestWithContext(ctx, http.MethodGet, "http://"+rest, nil); err != nil {
			return http.StatusBadRequest
		}
		if traceparent != "" {
			req.Header.Set("traceparent", traceparent)
		}
		c = h2cClient
	}
	if from, ok := ctx.Value(fromKey{}).(string); ok {
		c = clientFrom(from)
	}
	resp, err := c.Do(req)
	if err != nil {
		return http.StatusBadGateway
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// fromKey carries, in a request's context, the local address /chain's
// call must come from.
type fromKey struct{}

var (
	fromMu      sync.Mutex
	fromClients = map[string]*http.Client{}
)

// clientFrom is a keep-alive client whose connections are made from the
// local address from ("127.0.0.1:40001"): one connection per address at a
// time, so two processes in two network namespaces can hold sockets with
// the same addresses.
func clientFrom(from string) *http.Client {
	fromMu.Lock()
	defer fromMu.Unlock()
	if c, ok := fromClients[from]; ok {
		return c
	}
	local, err := net.ResolveTCPAddr("tcp", from)
	if err != nil {
		return client
	}
	d := &net.Dialer{LocalAddr: local, Timeout: 5 * time.Second}
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: d.DialContext, MaxConnsPerHost: 1}}
	fromClients[from] = c
	return c
}

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	useTLS := flag.Bool("tls", false, "serve HTTPS with a throwaway self-signed certificate: clients that offer it get HTTP/2")
	h2c := flag.Bool("h2c", false, "also serve HTTP/2 without TLS (h2c, Go >= 1.24)")
	hold := flag.Int("hold", 0, "open and keep this many TCP sockets (loopback connections to itself, two sockets each) before serving")
	flag.Parse()
	if *hold > 0 {
		if err := holdSockets(*hold); err != nil {
			fmt.Fprintln(os.Stderr, "hold sockets:", err)
			os.Exit(1)
		}
	}

	mux := http.NewServeMux()
	// /hello answers with a body: the status (200) is written by Write.
	mux.HandleFunc("/hello", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "hello")
	})
	// /echo/ID answers 200 without writing anything: net/http sends it.
	mux.HandleFunc("/echo/", func(w http.ResponseWriter, r *http.Request) {})
	// /status/CODE answers with that status.
	mux.HandleFunc("/status/", func(w http.ResponseWriter, r *http.Request) {
		code, err := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/status/"))
		if err != nil || code < 100 || code > 999 {
			code = http.StatusBadRequest
		}
		w.WriteHeader(code)
	})
	// /sleep?ms=N waits N milliseconds before answering.
	mux.HandleFunc("/sleep", func(w http.ResponseWriter, r *http.Request) {
		ms, _ := strconv.Atoi(r.URL.Query().Get("ms"))
		time.Sleep(time.Duration(ms) * time.Millisecond)
		w.WriteHeader(http.StatusOK)
	})

	// /chain?to=URL calls URL with the request's context and answers with
	// the status it got (502 on a transport error); an https URL is called
	// over HTTP/2, an h2c://host/path URL over HTTP/2 without TLS (Go >=
	// 1.24; 501 before).
	// With own=VALUE the outgoing request carries that traceparent, set by
	// the application itself.
	// With bg=1 the call gets a fresh context of its own instead, not
	// derived from the request's: nothing links it to a request.
	// With from=ADDR the call's connection is made from that local address.
	mux.HandleFunc("/chain", func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		if r.URL.Query().Get("bg") == "1" {
			c, cancel := context.WithCancel(context.Background())
			defer cancel()
			ctx = c
		}
		if from := r.URL.Query().Get("from"); from != "" {
			ctx = context.WithValue(ctx, fromKey{}, from)
		}
		w.WriteHeader(callWith(ctx, r.URL.Query().Get("to"), r.URL.Query().Get("own")))
	})
	// /fanout?to=URL&n=N calls URL from N goroutines at once, each passing
	// the request's context (or none with bg=1: only goroutine ancestry can
	// link those calls).
	mux.HandleFunc("/fanout", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		bg := r.URL.Query().Get("bg") == "1"
		// distinct=1: goroutine i calls URL + "-i", so the calls differ.
		distinct := r.URL.Query().Get("distinct") == "1"
		var wg sync.WaitGroup
		for i := 0; i < n; i++ {
			wg.Add(1)
			i := i
			go func() {
				defer wg.Done()
				ctx := r.Context()
				if bg {
					ctx = context.Background()
				}
				to := r.URL.Query().Get("to")
				if distinct {
					to += "-" + strconv.Itoa(i)
				}
				call(ctx, to)
			}()
		}
		wg.Wait()
	})

	// /panic panics; net/http recovers it and closes the connection
	// (HTTP/1) or resets the stream (HTTP/2) without a response. With
	// to=URL it first calls URL with the request's context; with sent=CODE
	// it first writes and flushes that status, which the client then sees.
	mux.HandleFunc("/panic", func(w http.ResponseWriter, r *http.Request) {
		if to := r.URL.Query().Get("to"); to != "" {
			call(r.Context(), to)
		}
		if code, err := strconv.Atoi(r.URL.Query().Get("sent")); err == nil {
			w.WriteHeader(code)
			w.(http.Flusher).Flush()
		}
		panic("handler panicked on purpose")
	})
	// /recovered panics inside middleware that recovers it and answers 500:
	// the request goes on in the handler, as with gin's Recovery.
	mux.Handle("/recovered", recoverer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		panic("recovered by the handler's middleware")
	})))

	// /gc?n=N forces N garbage collections while serving the request.
	mux.HandleFunc("/gc", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		for i := 0; i < n; i++ {
			runtime.GC()
		}
	})

	// /record remembers the traceparent it received; /last answers with
	// it: what a downstream service on another node would see.
	var lastMu sync.Mutex
	var last string
	mux.HandleFunc("/record", func(w http.ResponseWriter, r *http.Request) {
		lastMu.Lock()
		last = r.Header.Get("traceparent")
		lastMu.Unlock()
	})
	mux.HandleFunc("/last", func(w http.ResponseWriter, r *http.Request) {
		lastMu.Lock()
		defer lastMu.Unlock()
		fmt.Fprint(w, last)
	})

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "listen:", err)
		os.Exit(1)
	}
	// The tests read this line to learn the port.
	fmt.Printf("listening on %s\n", ln.Addr())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	if *h2c {
		if serveH2C == nil {
			fmt.Fprintln(os.Stderr, "-h2c needs Go 1.24 or later")
			os.Exit(64)
		}
		serveH2C(srv)
	}
	if *useTLS {
		cert, err := selfSigned()
		if err != nil {
			fmt.Fprintln(os.Stderr, "certificate:", err)
			os.Exit(1)
		}
		// ServeTLS turns net/http's own HTTP/2 server on.
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
		go srv.ServeTLS(ln, "", "")
	} else {
		go srv.Serve(ln)
	}

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	srv.Close()
}

// selfSigned makes a certificate for 127.0.0.1, valid for a day.
func selfSigned() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "httpserver"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// recoverer turns a panic of next into a 500, as recovery middleware does.
func recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if recover() != nil {
				w.WriteHeader(http.StatusInternalServerError)
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// held keeps the sockets of holdSockets open for the process's lifetime.
var held []net.Conn

// holdSockets opens n TCP sockets, raising the open-files limit to its
// hard maximum first: a service with many connections, whose socket
// tables and file descriptors are long to search.
func holdSockets(n int) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return err
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer ln.Close()
	accepted := make(chan error, 1)
	go func() {
		for i := 0; i < n/2; i++ {
			c, err := ln.Accept()
			if err != nil {
				accepted <- err
				return
			}
			held = append(held, c)
		}
		accepted <- nil
	}()
	dialed := make([]net.Conn, 0, n/2)
	for i := 0; i < n/2; i++ {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			return fmt.Errorf("after %d sockets: %w", 2*i, err)
		}
		dialed = append(dialed, c)
	}
	if err := <-accepted; err != nil {
		return err
	}
	held = append(held, dialed...)
	return nil
}
