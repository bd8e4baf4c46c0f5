package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/processional/processional/embedded"
	"github.com/processional/processional/internal/wire"
	"github.com/processional/processional/master"
)

// clusterEnv is two NATS servers joined by a route, in this process: a
// worker (`processional worker`) and a raw responder on the first, the
// master and the raw requester on the second, so that every call crosses
// the route.
type clusterEnv struct {
	a, b    *embedded.Server
	worker  *child
	echo    *child
	subject string
	nc      *nats.Conn    // raw requester, on b
	slave   *master.Slave // the worker, through b
}

func (c *clusterEnv) close() {
	if c == nil {
		return
	}
	if c.slave != nil {
		c.slave.Close()
	}
	if c.nc != nil {
		c.nc.Close()
	}
	for _, ch := range []*child{c.worker, c.echo} {
		if ch != nil {
			ch.kill()
		}
	}
	for _, s := range []*embedded.Server{c.b, c.a} {
		if s != nil {
			s.Shutdown()
		}
	}
}

func (e *Env) startCluster(ctx context.Context) (err error) {
	if e.cluster != nil {
		return nil
	}
	c := &clusterEnv{}
	defer func() {
		if err != nil {
			c.close()
		}
	}()
	var token = wire.NewID("t")
	if c.a, err = embedded.Start(embedded.Options{Token: token, Cluster: embedded.Cluster{Name: "bench", Port: -1}}); err != nil {
		return err
	}
	if c.b, err = embedded.Start(embedded.Options{Token: token, Cluster: embedded.Cluster{Name: "bench", Port: -1, Routes: []string{c.a.ClusterURL()}}}); err != nil {
		return err
	}
	id := wire.NewID("wc")
	cmd := exec.Command(e.binary, "worker", "--nats", c.a.URL(), "--token", token, "--id", id)
	cmd.Stdout, cmd.Stderr = nil, os.Stderr
	if c.worker, err = startProc(cmd); err != nil {
		return err
	}
	c.subject = "bench.cluster." + wire.NewID("b")
	if c.echo, err = startChild(e.binary, envChild+"="+modeNATS, "PROCESSIONAL_BENCH_URL="+c.a.URL(),
		"PROCESSIONAL_BENCH_TOKEN="+token, "PROCESSIONAL_BENCH_SUBJECT="+c.subject, "PROCESSIONAL_BENCH_READY=bench.cluster.ready"); err != nil {
		return err
	}
	if c.nc, err = nats.Connect(c.b.URL(), nats.Token(token)); err != nil {
		return err
	}
	// Both sides answer through the route once its interest has spread.
	deadline := time.Now().Add(60 * time.Second) // a loaded machine, a race-built worker
	for {
		_, rerr := c.nc.Request(c.subject, payload, time.Second)
		if c.slave == nil {
			c.slave, err = master.Connect(ctx, c.b.URL(), master.WithToken(token), master.WithServerID(id))
		}
		if rerr == nil && c.slave != nil {
			break
		}
		for name, ch := range map[string]*child{"worker " + id: c.worker, "responder": c.echo} {
			select {
			case <-ch.done:
				return fmt.Errorf("cluster: the %s ended: %v", name, ch.cmd.ProcessState)
			default:
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cluster: the worker or the responder did not answer through the route: %v, %v", rerr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	e.cluster = c
	return nil
}

// clusterPair measures a small Invoke through two routed servers against
// raw nats.go request-reply through the same two.
func clusterPair() *Pair {
	return &Pair{
		Name: "cluster_invoke_rtt", Baseline: "nats_cluster_rtt", Unit: "ns/op", N: 4_000, Chunks: 20,
		setup: func(ctx context.Context, e *Env) error { return e.startCluster(ctx) },
		base: func(_ context.Context, e *Env, n int) (time.Duration, error) {
			start := time.Now()
			for range n {
				if _, err := e.cluster.nc.Request(e.cluster.subject, payload, 10*time.Second); err != nil {
					return 0, err
				}
			}
			return time.Since(start), nil
		},
		measure: func(ctx context.Context, e *Env, n int) (time.Duration, error) {
			return invokeLoop(ctx, e.cluster.slave, n)
		},
	}
}
