package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"
)

// With -misbehave the backend speaks HTTP/1.1 over raw TCP and breaks its
// framing on purpose, the way buggy backends do. Every answer names the id
// of its request (query id=...) in X-Echo-Id and in its body, so a client
// can tell whose answer it got. By path:
//
//	/own             a correct response, without Content-Type
//	/extra           a correct response, then (after strayDelay) a second one
//	/extra-same      the same, both in one write
//	HEAD /head       headers announcing a body, then the body (do_HEAD = do_GET)
//	/nocontent       204 with a Content-Length, then that many bytes
//	/nocontent-bare  204 without a Content-Length, then a body
//
// What follows an answer is itself a complete response naming the same id,
// so a proxy that reads it as the next request's answer gives that client
// another one's response.

// strayDelay is how long after an answer its stray bytes are written: long
// enough for the proxy to be done with the answer, short enough that they
// are on the connection before the test's next request.
const strayDelay = 20 * time.Millisecond

func serveMisbehaving(addr string) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "backend:", err)
		os.Exit(1)
	}
	fmt.Printf("backend started pid=%d listen=%s misbehaving\n", os.Getpid(), addr)
	for {
		c, err := ln.Accept()
		if err != nil {
			fmt.Fprintln(os.Stderr, "backend:", err)
			os.Exit(1)
		}
		go serveMisbehavingConn(c)
	}
}

func serveMisbehavingConn(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	for {
		_ = c.SetReadDeadline(time.Now().Add(time.Minute))
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		_, _ = io.Copy(io.Discard, req.Body)
		id := req.URL.Query().Get("id")
		stray := echoResponse(id, "stray for")
		var now, later string
		switch req.URL.Path {
		case "/extra":
			now, later = echoResponse(id, "own"), stray
		case "/extra-same":
			now = echoResponse(id, "own") + stray
		case "/head":
			now = fmt.Sprintf("HTTP/1.1 200 OK\r\nX-Echo-Id: %s\r\nContent-Length: %d\r\n\r\n", id, len(stray))
			later = stray
		case "/nocontent":
			now = fmt.Sprintf("HTTP/1.1 204 No Content\r\nX-Echo-Id: %s\r\nContent-Length: %d\r\n\r\n", id, len(stray))
			later = stray
		case "/nocontent-bare":
			now = fmt.Sprintf("HTTP/1.1 204 No Content\r\nX-Echo-Id: %s\r\n\r\n", id)
			later = stray
		default:
			now = echoResponse(id, "own")
		}
		if _, err := io.WriteString(c, now); err != nil {
			return
		}
		if later != "" {
			time.Sleep(strayDelay)
			if _, err := io.WriteString(c, later); err != nil {
				return
			}
		}
	}
}

// echoResponse is a complete 200 response naming id, without Content-Type.
func echoResponse(id, what string) string {
	body := what + " " + id
	return fmt.Sprintf("HTTP/1.1 200 OK\r\nX-Echo-Id: %s\r\nContent-Length: %d\r\n\r\n%s", id, len(body), body)
}
