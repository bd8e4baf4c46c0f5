package cli

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/processional/processional/internal/natsauth"
)

// ConnFlags are the connection flags every command that joins a NATS
// server takes; each defaults to its environment variable.
type ConnFlags struct {
	URL, Token, User, Password string
	Creds, Cert, Key, CA       string
	Retries                    int
}

// AddConnFlags defines the connection flags on fs and returns where they
// land once fs is parsed.
func AddConnFlags(fs *flag.FlagSet) *ConnFlags {
	c := &ConnFlags{}
	fs.StringVar(&c.URL, "nats", envOr("PROCESSIONAL_NATS", "nats://127.0.0.1:4222"), "the NATS server's URL ($PROCESSIONAL_NATS)")
	fs.StringVar(&c.Token, "token", os.Getenv("PROCESSIONAL_TOKEN"), "the server's token ($PROCESSIONAL_TOKEN)")
	fs.StringVar(&c.User, "user", os.Getenv("PROCESSIONAL_USER"), "the NATS user ($PROCESSIONAL_USER)")
	fs.StringVar(&c.Password, "password", os.Getenv("PROCESSIONAL_PASSWORD"), "the NATS user's password ($PROCESSIONAL_PASSWORD)")
	fs.StringVar(&c.Creds, "creds", os.Getenv("PROCESSIONAL_CREDS"), "a NATS credentials file: JWT and nkey ($PROCESSIONAL_CREDS)")
	fs.StringVar(&c.Cert, "tlscert", "", "the client's TLS certificate file")
	fs.StringVar(&c.Key, "tlskey", "", "the client's TLS key file")
	fs.StringVar(&c.CA, "tlsca", "", "the TLS certificate authority file that signed the server's certificate")
	fs.IntVar(&c.Retries, "retries", 5, "connection attempts before giving up, a second apart")
	return c
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// Connect connects to the server as name, retrying a second apart and
// saying so on stderr; it blocks until connected or out of attempts.
func (c *ConnFlags) Connect(name string) (*nats.Conn, error) {
	creds, err := natsauth.Files{Token: c.Token, User: c.User, Password: c.Password, Creds: c.Creds, Cert: c.Cert, Key: c.Key, CA: c.CA}.Options()
	if err != nil {
		return nil, err
	}
	opts := append([]nats.Option{nats.Name(name), nats.Timeout(2 * time.Second),
		// A permissions violation or a slow consumer is said, not swallowed.
		nats.ErrorHandler(natsauth.ErrorHandler(slog.Warn, "client", name))}, creds...)
	// A worker rejoins within a lease of its server coming back, and keeps
	// trying while its server is away: it is a service.
	opts = append(opts, natsauth.Reconnect()...)
	for attempt := 1; attempt <= max(c.Retries, 1); attempt++ {
		var nc *nats.Conn
		if nc, err = nats.Connect(c.URL, opts...); err == nil {
			return nc, nil
		}
		if attempt < c.Retries {
			fmt.Fprintf(os.Stderr, "%s: cannot reach %s (%v); retrying (%d/%d)\n", name, c.URL, err, attempt, c.Retries)
			time.Sleep(time.Second)
		}
	}
	return nil, fmt.Errorf("cannot reach the NATS server at %s after %d attempts: %w", c.URL, max(c.Retries, 1), err)
}
