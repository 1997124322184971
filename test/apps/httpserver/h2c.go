//go:build go1.24

package main

import (
	"net/http"
	"time"
)

// Go 1.24 speaks HTTP/2 without TLS (h2c) through Protocols: a client that
// only does h2c, and servers that also accept it.
func init() {
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	h2cClient = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Protocols: p}}
	serveH2C = func(s *http.Server) {
		p := new(http.Protocols)
		p.SetHTTP1(true)
		p.SetUnencryptedHTTP2(true)
		s.Protocols = p
	}
}
