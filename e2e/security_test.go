//go:build linux

package e2e

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/nats-io/nkeys"

	"github.com/processional/processional/builtin"
	"github.com/processional/processional/master"
	"github.com/processional/processional/worker"
)

// lockedBuffer is a bytes.Buffer a process may write while the test reads.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// running is a command the test started; it is killed, with its process
// group, when the test ends.
type running struct {
	cmd    *exec.Cmd
	stderr *lockedBuffer
	first  string // its first line on stdout
}

// run starts the processional binary with args and waits for its first
// line on stdout, which must start with want.
func run(t *testing.T, want string, args ...string) *running {
	t.Helper()
	return runBinary(t, binProcessional, want, args...)
}

// runBinary is run for any of the package's binaries.
func runBinary(t *testing.T, binary, want string, args ...string) *running {
	t.Helper()
	r := &running{cmd: exec.Command(binary, args...), stderr: &lockedBuffer{}}
	r.cmd.Stderr = r.stderr
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := r.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL)
		r.cmd.Wait()
	})
	rd := bufio.NewReader(out)
	line, err := rd.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, want) {
		t.Fatalf("%s %s said %q (%v); stderr:\n%s", filepath.Base(binary), strings.Join(args, " "), line, err, r.stderr)
	}
	r.first = strings.TrimSpace(line)
	go io.Copy(io.Discard, rd) // what else it says, until it exits
	return r
}

// natsServer runs `processional nats` on a free loopback port with args
// and returns its client URL.
func natsServer(t *testing.T, args ...string) string {
	t.Helper()
	r := run(t, "nats ", append([]string{"nats", "--listen", "127.0.0.1:0"}, args...)...)
	return strings.Fields(r.first)[1]
}

// callCounts asks every worker on the server how many calls it ran, by
// function, through an authorized connection.
func callCounts(t *testing.T, nc *nats.Conn) map[string]uint64 {
	t.Helper()
	msg, err := nc.Request("$SRV.STATS."+worker.ServiceName, nil, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var stats micro.Stats
	if err := json.Unmarshal(msg.Data, &stats); err != nil {
		t.Fatal(err)
	}
	out := map[string]uint64{}
	for _, ep := range stats.Endpoints {
		switch ep.Name {
		case "heartbeat":
			continue
		case "calls":
			// Its data counts the calls by function, and the messages on
			// the call subject the worker could not read.
			var per map[string]worker.FunctionStat
			if err := json.Unmarshal(ep.Data, &per); err != nil {
				t.Fatalf("the calls endpoint's data %s: %v", ep.Data, err)
			}
			for fn, st := range per {
				out["call "+fn] = uint64(st.Requests)
			}
		}
		out[ep.Name] = uint64(ep.NumRequests)
	}
	return out
}

// rawAttempt speaks the NATS protocol by hand to addr: it connects with
// the given CONNECT options and publishes a call at once, and returns what
// the server answered.
func rawAttempt(t *testing.T, addr, connect string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(c)
	if _, err := r.ReadString('\n'); err != nil { // INFO
		t.Fatal(err)
	}
	fmt.Fprintf(c, "CONNECT %s\r\nPUB proc.server.call 4\r\nhack\r\nPING\r\n", connect)
	line, _ := r.ReadString('\n')
	return strings.TrimSpace(line)
}

// TestAuthRequired: a server started by processional, embedded in a
// master or a `processional server`, refuses a client with no token or a
// wrong one, and no function runs.
func TestAuthRequired(t *testing.T) {
	m := newMaster(t)
	s := spawn(t, m)
	if _, err := master.Invoke(testCtx(t), s, Sum, []int{1, 2}); err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, binProcessional)
	for _, c := range []struct{ name, url, token string }{{"embedded", m.URL(), m.Token()}, {"processional server", srv.url, srv.token}} {
		t.Run(c.name, func(t *testing.T) {
			if !strings.HasPrefix(c.url, "nats://127.0.0.1:") {
				t.Fatalf("the server listens on %s, not on loopback only", c.url)
			}
			good, err := nats.Connect(c.url, nats.Token(c.token))
			if err != nil {
				t.Fatal(err)
			}
			defer good.Close()
			before := callCounts(t, good)
			for _, token := range []string{"", "wrong-" + c.token} {
				_, err := nats.Connect(c.url, nats.Token(token), nats.Timeout(5*time.Second))
				if !errors.Is(err, nats.ErrAuthorization) {
					t.Errorf("connect with token %q: %v, want %v", token, err, nats.ErrAuthorization)
				}
				opts, _ := json.Marshal(map[string]any{"auth_token": token, "verbose": false, "pedantic": false})
				if got := rawAttempt(t, strings.TrimPrefix(c.url, "nats://"), string(opts)); !strings.Contains(got, "Authorization Violation") {
					t.Errorf("a raw client with token %q publishing a call got %q, want an authorization violation", token, got)
				}
			}
			if after := callCounts(t, good); fmt.Sprint(after) != fmt.Sprint(before) {
				t.Fatalf("calls ran for refused clients: before %v, after %v", before, after)
			}
		})
	}
}

// pki is a certificate authority made in the test.
type pki struct {
	dir  string
	name string
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	file string // the authority's certificate, PEM
}

func newPKI(t *testing.T, name string) *pki {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	p := &pki{dir: t.TempDir(), name: name, cert: cert, key: key}
	p.file = p.write(t, name+"-ca.pem", "CERTIFICATE", der)
	return p
}

func (p *pki) write(t *testing.T, name, kind string, der []byte) string {
	t.Helper()
	path := filepath.Join(p.dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// issue makes a certificate for name signed by the authority: a server's,
// for 127.0.0.1 and the addresses given, or a client's. It returns the
// certificate and key files.
func (p *pki) issue(t *testing.T, name string, server bool, addrs ...string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
		for _, a := range addrs {
			tmpl.IPAddresses = append(tmpl.IPAddresses, net.ParseIP(a))
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.cert, &key.PublicKey, p.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return p.write(t, name+".pem", "CERTIFICATE", der), p.write(t, name+"-key.pem", "EC PRIVATE KEY", kder)
}

// TestTLSClientVerification: `processional nats` speaks TLS and verifies
// its clients' certificates; a worker joins it with its certificate, a
// master calls it over TLS, a master spawns a worker that gets the same
// files; a client with a certificate of another authority, or none, is
// refused.
func TestTLSClientVerification(t *testing.T) {
	ca := newPKI(t, "processional-test")
	srvCert, srvKey := ca.issue(t, "nats", true)
	cert, key := ca.issue(t, "client", false)
	url := natsServer(t, "--token", "tls-token", "--tlscert", srvCert, "--tlskey", srvKey, "--tlsca", ca.file)
	ctx := testCtx(t)

	run(t, "worker w-tls serving", "worker", "--id", "w-tls", "--nats", url, "--token", "tls-token",
		"--tlscert", cert, "--tlskey", key, "--tlsca", ca.file)
	s, err := master.Connect(ctx, url, master.WithToken("tls-token"), master.WithTLS(cert, key, ca.file), master.WithServerID("w-tls"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got, err := master.Invoke(ctx, s, Sum, []int{1, 2, 3}); err != nil || got != 6 {
		t.Fatalf("a call over TLS: %v, %v", got, err)
	}

	m, err := master.New(ctx, master.WithNATS(url), master.WithToken("tls-token"), master.WithTLS(cert, key, ca.file))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if !m.Conn().TLSRequired() {
		t.Fatal("the master's connection does not speak TLS")
	}
	spawned := spawn(t, m)
	if got, err := master.Invoke(ctx, spawned, Sum, []int{4, 5}); err != nil || got != 9 {
		t.Fatalf("a call to a spawned worker over TLS: %v, %v", got, err)
	}

	// `processional server` speaks TLS to its TCP clients the same way.
	srv := startServer(t, binProcessional, "--tlscert", srvCert, "--tlskey", srvKey, "--tlsca", ca.file)
	onServer, err := master.Connect(ctx, srv.url, master.WithToken(srv.token), master.WithTLS(cert, key, ca.file))
	if err != nil {
		t.Fatal(err)
	}
	defer onServer.Close()
	if got, err := master.Invoke(ctx, onServer, Sum, []int{1, 1}); err != nil || got != 2 {
		t.Fatalf("a call to processional server over TLS: %v, %v", got, err)
	}
	if nc, err := nats.Connect(srv.url, nats.Token(srv.token), nats.RootCAs(ca.file), nats.Timeout(5*time.Second)); err == nil {
		nc.Close()
		t.Error("processional server let in a client with no certificate")
	}

	other := newPKI(t, "someone-else")
	wrongCert, wrongKey := other.issue(t, "intruder", false)
	for _, c := range []struct {
		name string
		opts []nats.Option
	}{
		{"a certificate of another authority", []nats.Option{nats.ClientCert(wrongCert, wrongKey), nats.RootCAs(ca.file)}},
		{"no certificate", []nats.Option{nats.RootCAs(ca.file)}},
	} {
		nc, err := nats.Connect(url, append(c.opts, nats.Token("tls-token"), nats.Timeout(5*time.Second))...)
		if err == nil {
			nc.Close()
			t.Errorf("a client with %s was let in", c.name)
		}
		t.Logf("%s: %v", c.name, err)
	}
	if _, err := master.Connect(ctx, url, master.WithToken("tls-token"), master.WithTLS(wrongCert, wrongKey, ca.file), master.WithServerID("w-tls")); !errors.Is(err, master.ErrConnect) {
		t.Errorf("a master with a certificate of another authority: %v, want %v", err, master.ErrConnect)
	}
}

// operator is a NATS operator with one account, made in the test: its
// server configuration trusts the operator and preloads the account.
type operator struct {
	config  string
	account nkeys.KeyPair
}

func newOperator(t *testing.T, dir string) *operator {
	t.Helper()
	okp, _ := nkeys.CreateOperator()
	opub, _ := okp.PublicKey()
	ojwt, err := jwt.NewOperatorClaims(opub).Encode(okp)
	if err != nil {
		t.Fatal(err)
	}
	akp, _ := nkeys.CreateAccount()
	apub, _ := akp.PublicKey()
	ajwt, err := jwt.NewAccountClaims(apub).Encode(okp)
	if err != nil {
		t.Fatal(err)
	}
	config := filepath.Join(dir, "operator.conf")
	text := fmt.Sprintf("operator: %q\nresolver: MEMORY\nresolver_preload: {\n  %s: %q\n}\n", ojwt, apub, ajwt)
	if err := os.WriteFile(config, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return &operator{config: config, account: akp}
}

// user writes a credentials file for a user of account, signed by it.
func user(t *testing.T, dir, name string, account nkeys.KeyPair) string {
	t.Helper()
	ukp, _ := nkeys.CreateUser()
	upub, _ := ukp.PublicKey()
	uc := jwt.NewUserClaims(upub)
	uc.Name = name
	ujwt, err := uc.Encode(account)
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := ukp.Seed()
	creds, err := jwt.FormatUserConfig(ujwt, seed)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name+".creds")
	if err := os.WriteFile(path, creds, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestCredentialsFiles: a `processional nats` trusting an operator's JWTs
// takes workers and masters presenting credentials files (nkeys and JWT),
// spawned workers included; a user of an account it does not know is
// refused.
func TestCredentialsFiles(t *testing.T) {
	dir := t.TempDir()
	op := newOperator(t, dir)
	workerCreds := user(t, dir, "worker", op.account)
	masterCreds := user(t, dir, "master", op.account)
	r := run(t, "nats ", "nats", "--listen", "127.0.0.1:0", "--config", op.config)
	url := strings.Fields(r.first)[1]
	if !strings.Contains(r.first, "auth "+op.config) {
		t.Fatalf("processional nats with an operator said %q", r.first)
	}
	ctx := testCtx(t)
	run(t, "worker w-jwt serving", "worker", "--id", "w-jwt", "--nats", url, "--token", "", "--creds", workerCreds)
	s, err := master.Connect(ctx, url, master.WithCredentials(masterCreds), master.WithServerID("w-jwt"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got, err := master.Invoke(ctx, s, Sum, []int{1, 2, 3}); err != nil || got != 6 {
		t.Fatalf("a call with credentials files: %v, %v", got, err)
	}
	m, err := master.New(ctx, master.WithNATS(url), master.WithCredentials(masterCreds))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if got, err := master.Invoke(ctx, spawn(t, m), Sum, []int{4, 5}); err != nil || got != 9 {
		t.Fatalf("a call to a spawned worker with credentials files: %v, %v", got, err)
	}

	// `processional server` under the operator: its own worker presents a
	// credentials file, and so do its clients.
	srv := startServer(t, binProcessional, "--config", op.config, "--creds", user(t, dir, "server", op.account))
	onServer, err := master.Connect(ctx, srv.url, master.WithCredentials(masterCreds))
	if err != nil {
		t.Fatal(err)
	}
	defer onServer.Close()
	if got, err := master.Invoke(ctx, onServer, Sum, []int{1, 1}); err != nil || got != 2 {
		t.Fatalf("a call to processional server with credentials files: %v, %v", got, err)
	}
	if nc, err := nats.Connect(srv.url, nats.Timeout(5*time.Second)); err == nil {
		nc.Close()
		t.Error("processional server under an operator let in a client with no credentials")
	}

	stranger, _ := nkeys.CreateAccount()
	intruder := user(t, dir, "intruder", stranger)
	if nc, err := nats.Connect(url, nats.UserCredentials(intruder), nats.Timeout(5*time.Second)); err == nil {
		nc.Close()
		t.Error("a user of an unknown account was let in")
	}
	if nc, err := nats.Connect(url, nats.Timeout(5*time.Second)); err == nil {
		nc.Close()
		t.Error("a client with no credentials was let in")
	}
	if _, err := master.New(ctx, master.WithNATS(url), master.WithCredentials(filepath.Join(dir, "missing.creds"))); !errors.Is(err, master.ErrConfig) || !strings.Contains(err.Error(), "missing.creds") {
		t.Errorf("a missing credentials file: %v, want %v naming it", err, master.ErrConfig)
	}
}

// TestSubjectPermissions: a worker confined to its own subjects, and a
// master to calling, serve everything (calls, objects, the CLI's JSON,
// discovery) with no permissions violation; the worker cannot listen to,
// or call, another worker; a wrong password is refused.
func TestSubjectPermissions(t *testing.T) {
	// The deployment's own configuration, as docker-compose.yml mounts it.
	t.Setenv("PROCESSIONAL_MASTER_PASSWORD", "master-pw")
	t.Setenv("PROCESSIONAL_WORKER_1_PASSWORD", "worker-pw")
	t.Setenv("PROCESSIONAL_WORKER_2_PASSWORD", "other-pw")
	t.Setenv("PROCESSIONAL_ROUTE_PASSWORD", "route-pw")
	// Two servers joined by a route, as in the compose file: the worker
	// on one, the master on the other.
	routes := freePort(t)
	r := run(t, "nats ", "nats", "--listen", "127.0.0.1:0", "--config", "../deploy/nats.conf", "--cluster", routes)
	url := strings.Fields(r.first)[1]
	r2 := run(t, "nats ", "nats", "--listen", "127.0.0.1:0", "--config", "../deploy/nats.conf", "--cluster", "127.0.0.1:0",
		"--routes", "nats://"+routes)
	hostport := strings.TrimPrefix(strings.Fields(r2.first)[1], "nats://")
	w := run(t, "worker worker-1 serving", "worker", "--id", "worker-1", "--token", "", "--nats", url, "--user", "worker-1", "--password", "worker-pw")
	ctx := testCtx(t)
	var s *master.Slave
	var err error
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) { // the route's interest takes a moment
		if s, err = master.Connect(ctx, "nats://master:master-pw@"+hostport, master.WithServerID("worker-1")); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got, err := master.Invoke(ctx, s, Sum, []int{1, 2, 3}); err != nil || got != 6 {
		t.Fatalf("a call under permissions: %v, %v", got, err)
	}
	// A value past the max payload travels in chunks, both ways, whose
	// acknowledgements go to inboxes.
	big := bytes.Repeat([]byte("processional"), 3<<20/12)
	if got, err := master.Invoke(ctx, s, builtin.Echo, big); err != nil || !bytes.Equal(got, big) {
		t.Fatalf("a 3 MiB echo under permissions: %d bytes, %v", len(got), err)
	}
	counter, err := master.Wrap(ctx, s, builtin.NewCounter, int64(10))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := counter.Call(ctx, "Add", int64(5)); err != nil {
		t.Fatalf("a proxy call under permissions: %v", err)
	}
	counter.Close()
	stdout, stderr, code := processional(t, "call", "--nats", "nats://master:master-pw@"+hostport, "--token", "", "--worker", "worker-1", "sum", "[4,5]")
	if code != 0 || strings.TrimSpace(stdout) != "9" {
		t.Fatalf("a JSON call under permissions (%d): %q %s", code, stdout, stderr)
	}
	if stdout, stderr, code = processional(t, "ls", "--nats", "nats://master:master-pw@"+hostport, "--token", ""); code != 0 || !strings.Contains(stdout, "worker-1") {
		t.Fatalf("ls under permissions (%d): %s%s", code, stdout, stderr)
	}
	// The compose file's master: the demo, as the master user.
	if stdout, stderr, code = processional(t, "demo", "--nats", url, "--user", "master", "--password", "master-pw", "--worker", "worker-1"); code != 0 || !strings.Contains(stdout, "9. Close") {
		t.Fatalf("the demo under permissions (%d):\n%s%s", code, stdout, stderr)
	}
	if strings.Contains(w.stderr.String(), "iolation") {
		t.Fatalf("the worker needed more than its permissions:\n%s", w.stderr)
	}
	// A master with a master's rights only spawns a worker that presents
	// a worker's user; with the master's own, the worker cannot serve.
	m, err := master.New(ctx, master.WithNATS("nats://"+hostport), master.WithUserInfo("master", "master-pw"))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var spawnErr lockedBuffer
	if _, err := m.Spawn(ctx, master.WithID("worker-2"), master.WithStartTimeout(5*time.Second), master.WithOutput(nil, &spawnErr)); !errors.Is(err, master.ErrSpawn) || !strings.Contains(err.Error(), "denied it a worker's subjects") {
		t.Fatalf("a worker spawned with the master's rights: %v, want %v saying the subjects were denied", err, master.ErrSpawn)
	}
	var spawned lockedBuffer
	s2, err := m.Spawn(ctx, master.WithID("worker-2"), master.WithWorkerUserInfo("worker-2", "other-pw"), master.WithOutput(nil, &spawned))
	if err != nil {
		t.Fatalf("a worker spawned with a worker's user: %v\n%s", err, spawned.String())
	}
	if got, err := master.Invoke(ctx, s2, builtin.Echo, big); err != nil || !bytes.Equal(got, big) {
		t.Fatalf("a 3 MiB echo to the spawned worker under permissions: %d bytes, %v", len(got), err)
	}
	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(spawned.String(), "iolation") {
		t.Fatalf("the spawned worker needed more than its permissions:\n%s", spawned.String())
	}

	// The worker's user is confined to its own subjects.
	violations := make(chan error, 4)
	nc, err := nats.Connect(url, nats.UserInfo("worker-1", "worker-pw"), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		violations <- err
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, err := nc.SubscribeSync("proc.worker-2.>"); err != nil {
		t.Fatal(err)
	}
	if err := nc.Publish("proc.worker-2.call", []byte("x")); err != nil {
		t.Fatal(err)
	}
	nc.Flush()
	for i := 0; i < 2; i++ {
		select {
		case err := <-violations:
			if !errors.Is(err, nats.ErrPermissionViolation) {
				t.Errorf("the worker's user out of its subjects: %v, want %v", err, nats.ErrPermissionViolation)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the worker's user listened to or called another worker without a violation")
		}
	}
	if nc, err := nats.Connect(url, nats.UserInfo("worker-1", "wrong"), nats.Timeout(5*time.Second)); !errors.Is(err, nats.ErrAuthorization) {
		if err == nil {
			nc.Close()
		}
		t.Errorf("a wrong password: %v, want %v", err, nats.ErrAuthorization)
	}
}

// freePort is a loopback address whose port was free a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
