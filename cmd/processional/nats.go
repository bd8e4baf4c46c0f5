package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

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
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: processional nats [--listen host:port] [--token T] [--cluster host:port --routes URLs]\n\nRuns a NATS server, alone or as a member of a cluster joined by routes,\nuntil SIGTERM or SIGINT. It prints its client URL and token.\n\nFlags:")
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
	fmt.Printf("nats %s token %s\n", srv.URL(), srv.Token())
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
