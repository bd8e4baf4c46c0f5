package master

import (
	"fmt"

	"github.com/processional/processional/internal/natsauth"
)

// WithCredentials makes the master present a NATS credentials file (a
// user JWT and its nkey seed, as `nsc` writes them) to the server of
// [WithNATS] or [Connect], and hands the same file to the workers it
// spawns. A user and password go with [WithUserInfo], or in the URL
// (nats://user:password@host:4222).
func WithCredentials(file string) Option {
	return func(o *options) error {
		if file == "" {
			return fmt.Errorf("%w: empty credentials file name", ErrConfig)
		}
		o.files.Creds = file
		o.note("WithCredentials")
		return nil
	}
}

// WithUserInfo makes the master present a user and password to the server
// of [WithNATS] or [Connect] (as nats://user:password@host:4222 would),
// and hands them to the workers it spawns.
func WithUserInfo(user, password string) Option {
	return func(o *options) error {
		if user == "" {
			return fmt.Errorf("%w: empty NATS user name", ErrConfig)
		}
		o.files.User, o.files.Password = user, password
		o.note("WithUserInfo")
		return nil
	}
}

// WithTLS makes the master speak TLS to the server of [WithNATS] or
// [Connect]: caFile is the certificate authority (PEM) that signed the
// server's certificate, empty for the system's; certFile and keyFile are
// the master's own certificate and key, for a server that verifies its
// clients, both empty otherwise. The workers it spawns present the same
// files.
func WithTLS(certFile, keyFile, caFile string) Option {
	return func(o *options) error {
		if err := natsauth.TLSPair(certFile, keyFile); err != nil {
			return fmt.Errorf("%w: %w", ErrConfig, err)
		}
		if certFile == "" && caFile == "" {
			return fmt.Errorf("%w: TLS with no certificate and no certificate authority", ErrConfig)
		}
		o.files.Cert, o.files.Key, o.files.CA = certFile, keyFile, caFile
		o.note("WithTLS")
		return nil
	}
}

// credentials are what the master presents to its NATS server.
func (o *options) credentials() natsauth.Files {
	f := o.files
	f.Token = o.token
	return f
}
