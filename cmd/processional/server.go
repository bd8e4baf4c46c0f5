package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/nats-io/nats.go"

	"github.com/processional/processional/internal/serveraddr"
	"github.com/processional/processional/server"
)

func serverCmd(args []string) int {
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:0", "TCP address to listen on (host:port; port 0 for a free one; - for none)")
	socket := fs.String("socket", "", "path of a Unix socket (mode 0600) to listen on too")
	token := fs.String("token", "", "token clients must present (default: $PROCESSIONAL_TOKEN, else a random one)")
	id := fs.String("id", server.DefaultID, "the server's worker id: its subjects are proc.<id>.…")
	logging := fs.Bool("log", false, "turn the NATS server's log on")
	sec := addServerSecurityFlags(fs)
	creds := fs.String("creds", os.Getenv("PROCESSIONAL_CREDS"), "with --config: the credentials file the server's own worker presents, JWT and nkey ($PROCESSIONAL_CREDS)")
	user := fs.String("user", os.Getenv("PROCESSIONAL_USER"), "with --config: the user the server's own worker connects as ($PROCESSIONAL_USER)")
	password := fs.String("password", os.Getenv("PROCESSIONAL_PASSWORD"), "with --user: its password ($PROCESSIONAL_PASSWORD)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: processional server [--listen host:port] [--socket path] [--token T | --config FILE --creds F | --user U] [--tlscert F --tlskey F [--tlsca F]] [--id ID]\n\nRuns a persistent worker with its own NATS server, for many masters\n(master.Connect). Stops after its running calls on SIGTERM, SIGINT, or a\nrequest on proc.<id>.ctl.stop.\n\nFlags:")
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if *token == "" {
		*token = os.Getenv("PROCESSIONAL_TOKEN")
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sig)
	if sec.config != "" && !flagSet(fs, "listen") {
		*listen = "" // the file's listen, if any
	}
	o := server.Options{Listen: *listen, Socket: *socket, Token: *token, ID: *id, Logging: *logging, ConfigFile: sec.config}
	var err error
	if o.TLS, err = sec.tls(); err != nil {
		return fail("server", err)
	}
	switch {
	case sec.config == "" && (flagSet(fs, "creds") || flagSet(fs, "user")):
		return fail("server", fmt.Errorf("--creds and --user go with --config: without it, the server's own worker presents its token"))
	case sec.config == "":
	case *creds != "":
		o.Conn = append(o.Conn, nats.UserCredentials(*creds))
	case *user != "":
		o.Conn = append(o.Conn, nats.UserInfo(*user, *password))
	}
	s, err := server.Start(o)
	if err != nil {
		fmt.Fprintf(os.Stderr, "processional server: %v\n", err)
		return 1
	}
	addr := serveraddr.Addr{ID: s.ID(), Token: s.Token()}
	if *listen != "-" {
		addr.URL = s.URL()
	}
	if s.Socket() != "" {
		addr.Socket = "unix://" + s.Socket()
	}
	serveraddr.Write(os.Stdout, addr)
	select {
	case got := <-sig:
		fmt.Fprintf(os.Stderr, "processional server: %s: finishing the running calls\n", got)
	case <-s.Stopping():
		fmt.Fprintln(os.Stderr, "processional server: stop requested: finishing the running calls")
	}
	if err := s.Close(); err != nil {
		fmt.Fprintf(os.Stderr, "processional server: %v\n", err)
		return 1
	}
	return 0
}
