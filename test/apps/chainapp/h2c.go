//go:build go1.24

package main

import (
	"net/http"
	"time"
)

// serveH2C makes srv answer HTTP/2 with prior knowledge (h2c) besides
// HTTP/1.1, through net/http's own server, whose handler golens probes.
func serveH2C(srv *http.Server) {
	p := new(http.Protocols)
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	srv.Protocols = p
}

// h2cClient speaks h2c to http:// URLs, through net/http's Transport.
func h2cClient() *http.Client {
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Protocols: p}}
}
