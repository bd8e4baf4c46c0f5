// Package serveraddr writes and reads the address block `processional
// server` prints on its standard output, so that scripts and tests can
// find the server:
//
//	processional server server
//	url:    nats://127.0.0.1:4222
//	socket: unix:///tmp/proc.sock
//	token:  …
package serveraddr

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// Addr is where a server listens and the token it requires. URL or Socket
// is empty when the server has no such listener.
type Addr struct {
	ID, URL, Socket, Token string
}

// Write prints a as the server's address block.
func Write(w io.Writer, a Addr) {
	fmt.Fprintf(w, "processional server %s\n", a.ID)
	if a.URL != "" {
		fmt.Fprintf(w, "url:    %s\n", a.URL)
	}
	if a.Socket != "" {
		fmt.Fprintf(w, "socket: %s\n", a.Socket)
	}
	fmt.Fprintf(w, "token:  %s\n", a.Token)
}

// Read reads an address block from r, up to its token line.
func Read(r *bufio.Reader) (Addr, error) {
	var a Addr
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return a, fmt.Errorf("server address: %w", err)
		}
		if id, ok := strings.CutPrefix(line, "processional server "); ok {
			a.ID = strings.TrimSpace(id)
			continue
		}
		k, v, _ := strings.Cut(line, ":")
		v = strings.TrimSpace(v)
		switch k {
		case "url":
			a.URL = v
		case "socket":
			a.Socket = v
		case "token":
			a.Token = v
			return a, nil
		}
	}
}
