package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/processional/processional/embedded"
)

// natsCmd runs a bare NATS server (the embedded one), optionally a member
// of a cluster: for hosts where no nats-server is installed.
func natsCmd(args []string) int {
	fs := flag.NewFlagSet("nats", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:4222", "client address, host:port")
	token := fs.String("token", os.Getenv("PROCESSIONAL_TOKEN"), "token clients must present ($PROCESSIONAL_TOKEN; default: a random one, printed)")
	name := fs.String("name", "", "the server's name in its cluster")
	cluster := fs.String("cluster", "", "route address to listen on, host:port: makes the server a cluster member")
	clusterName := fs.String("cluster-name", "processional", "the cluster's name, the same on every member")
	routes := fs.String("routes", "", "comma-separated route URLs of the other members (nats://host:port)")
	sec := addServerSecurityFlags(fs)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: processional nats [--listen host:port] [--token T | --config FILE] [--tlscert F --tlskey F [--tlsca F]] [--cluster host:port --routes URLs]\n\nRuns a NATS server, alone or as a member of a cluster joined by routes,\nuntil SIGTERM or SIGINT. It prints its client URL and token. Clients must\npresent the token, or the credentials the configuration file asks for\n(users, nkeys, an operator's JWTs).\n\nFlags:")
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	host, port, err := splitHostPort(*listen)
	if err != nil {
		return fail("nats", fmt.Errorf("--listen %q: %v", *listen, err))
	}
	o := embedded.Options{Host: host, Port: port, Token: *token, Name: *name}
	if !flagSet(fs, "listen") && sec.config != "" && fileListens(sec.config) {
		o.Host, o.Port = "", 0 // the file's listen
	}
	o.ConfigFile = sec.config
	if o.TLS, err = sec.tls(); err != nil {
		return fail("nats", err)
	}
	if *cluster != "" {
		chost, cport, err := splitHostPort(*cluster)
		if err != nil {
			return fail("nats", fmt.Errorf("--cluster %q: %v", *cluster, err))
		}
		if cport == 0 {
			cport = -1
		}
		o.Cluster = embedded.Cluster{Name: *clusterName, Host: chost, Port: cport}
		if *routes != "" {
			o.Cluster.Routes = strings.Split(*routes, ",")
		}
	}
	srv, err := embedded.Start(o)
	if err != nil {
		return fail("nats", err)
	}
	defer srv.Shutdown()
	if srv.Token() != "" {
		fmt.Printf("nats %s token %s\n", srv.URL(), srv.Token())
	} else {
		fmt.Printf("nats %s auth %s\n", srv.URL(), sec.config)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	return 0
}

func splitHostPort(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("port %q", p)
	}
	return host, port, nil
}

// serverSecurity are the flags of a command that runs a NATS server which
// clients reach over the network: a configuration file, TLS.
type serverSecurity struct{ config, cert, key, ca string }

func addServerSecurityFlags(fs *flag.FlagSet) *serverSecurity {
	s := &serverSecurity{}
	fs.StringVar(&s.config, "config", "", "a nats-server configuration file: users and permissions, nkeys, operator JWTs, TLS (flags win over it)")
	fs.StringVar(&s.cert, "tlscert", "", "the server's TLS certificate file (PEM): clients must speak TLS")
	fs.StringVar(&s.key, "tlskey", "", "the server's TLS key file (PEM)")
	fs.StringVar(&s.ca, "tlsca", "", "a certificate authority file (PEM): clients must present a certificate it signed")
	return s
}

// tls is the TLS configuration the flags ask for, nil for none.
func (s *serverSecurity) tls() (*tls.Config, error) {
	if s.cert == "" && s.key == "" {
		if s.ca != "" {
			return nil, fmt.Errorf("--tlsca needs --tlscert and --tlskey: clients are verified over TLS")
		}
		return nil, nil
	}
	if s.cert == "" || s.key == "" {
		return nil, fmt.Errorf("--tlscert and --tlskey go together")
	}
	return embedded.ServerTLS(s.cert, s.key, s.ca)
}

// flagSet reports whether the flag name was given on the command line.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// fileListens reports whether the nats-server configuration file at path
// sets the client address (listen, host or port); an unreadable file is
// left for the server to report.
func fileListens(path string) bool {
	o, err := server.ProcessConfigFile(path)
	return err == nil && (o.Host != "" || o.Port != 0)
}
