// Package natsauth turns the credentials a process presents to a NATS
// server (a token, a credentials file, TLS files) into nats.go options, in
// one place for the master, the spawned worker and the commands.
//
// A user and password may also travel in the server's URL
// (nats://user:password@host:4222), which nats.go reads itself.
//
// It also holds what their connections share besides: prompt reconnects
// ([Reconnect]) and asynchronous errors said, not dropped
// ([ErrorHandler]).
package natsauth

import (
	"errors"
	"fmt"
	"os"

	"github.com/nats-io/nats.go"
)

// ErrFiles wraps every error about the files given.
var ErrFiles = errors.New("NATS credentials")

// Files are the credentials presented to a NATS server. The zero value
// presents nothing.
type Files struct {
	Token    string // the server's token
	User     string // a user name, with Password
	Password string
	Creds    string // a credentials file: a user JWT and its nkey seed
	Cert     string // the client's TLS certificate (PEM), with Key
	Key      string // the client's TLS key (PEM), with Cert
	CA       string // the certificate authority (PEM) that signed the server's certificate
}

// Options returns the nats.go options that present f, or an error naming
// the file that is missing or the flag that wants its pair.
func (f Files) Options() ([]nats.Option, error) {
	var opts []nats.Option
	if f.Token != "" {
		opts = append(opts, nats.Token(f.Token))
	}
	if f.User != "" {
		opts = append(opts, nats.UserInfo(f.User, f.Password))
	}
	if err := TLSPair(f.Cert, f.Key); err != nil {
		return nil, err
	}
	for _, file := range []struct{ what, path string }{{"credentials file", f.Creds}, {"TLS certificate", f.Cert}, {"TLS key", f.Key}, {"TLS certificate authority", f.CA}} {
		if file.path == "" {
			continue
		}
		if _, err := os.Stat(file.path); err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrFiles, file.what, err)
		}
	}
	if f.Creds != "" {
		opts = append(opts, nats.UserCredentials(f.Creds))
	}
	if f.Cert != "" {
		opts = append(opts, nats.ClientCert(f.Cert, f.Key))
	}
	if f.CA != "" {
		opts = append(opts, nats.RootCAs(f.CA))
	}
	return opts, nil
}

// TLSPair checks that a client's TLS certificate and key are given
// together: both or neither. It is the reference check; [Files.Options]
// makes it.
func TLSPair(cert, key string) error {
	if (cert == "") != (key == "") {
		return fmt.Errorf("%w: a TLS certificate (%q) and key (%q) go together: give both or neither", ErrFiles, cert, key)
	}
	return nil
}
