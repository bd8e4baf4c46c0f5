package natsauth

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestOptions(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "there.pem")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.creds")
	for _, tc := range []struct {
		name  string
		f     Files
		n     int    // options, when no error
		words string // in the error, when one
	}{
		{"nothing", Files{}, 0, ""},
		{"token and user", Files{Token: "t", User: "u", Password: "p"}, 2, ""},
		{"every file", Files{Creds: file, Cert: file, Key: file, CA: file}, 3, ""},
		{"a certificate without its key", Files{Cert: file}, 0, "go together"},
		{"a missing credentials file", Files{Creds: missing}, 0, "credentials file: stat " + missing},
		{"a missing authority", Files{CA: missing}, 0, "TLS certificate authority"},
	} {
		opts, err := tc.f.Options()
		switch {
		case tc.words == "" && (err != nil || len(opts) != tc.n):
			t.Errorf("%s: %d options, %v; want %d", tc.name, len(opts), err, tc.n)
		case tc.words != "" && (!errors.Is(err, ErrFiles) || !strings.Contains(err.Error(), tc.words)):
			t.Errorf("%s: %v, want ErrFiles saying %q", tc.name, err, tc.words)
		}
	}
}
