package wire

import (
	"encoding/json"
	"fmt"
	"os"
	"syscall"

	"github.com/processional/processional/internal/registry"
	"github.com/processional/processional/shm"
)

// ParentDeathSignal is the signal a master arms as its spawned workers'
// parent-death signal (Linux, prctl PR_SET_PDEATHSIG). It is a real-time
// signal that nobody sends by hand, so that the worker can tell its
// master's death from a SIGTERM asking it to stop: on it, the worker kills
// its whole process group at once. (The kernel sends it when the master's
// spawning thread exits, which is before the worker is reparented: the
// worker cannot wait to see its parent change.)
const ParentDeathSignal = syscall.Signal(40)

// EnvWorker is the environment variable through which a master hands a
// spawned worker its [WorkerConfig], as JSON. A process that has it is a
// worker: its main must call worker.Main first.
const EnvWorker = "PROCESSIONAL_WORKER"

// WorkerConfig is what a spawned worker needs to join its master.
type WorkerConfig struct {
	URL     string `json:"url"`     // the NATS server to connect to
	Token   string `json:"token"`   // the server's token, if any
	Worker  string `json:"worker"`  // the worker's id
	Master  string `json:"master"`  // the spawning master's id
	Hello   string `json:"hello"`   // the subject to say hello on
	Version uint64 `json:"version"` // the master's protocol version
	PID     int    `json:"pid"`     // the master's process id: the worker's parent
	// Lane is the descriptor of the worker's end of the lane to its
	// master (package lane); 0 for none.
	Lane int `json:"lane,omitempty"`
	// LaneAddr and LaneKey, when there is no Lane to inherit, are where the
	// worker dials its lane (the path of a Unix socket), and the key it
	// presents there, as hex (package lane's Dial).
	LaneAddr string `json:"lane_addr,omitempty"`
	LaneKey  string `json:"lane_key,omitempty"`
	// MaxValue is the largest call or result the master takes, for the
	// worker to take the same; 0 for the default.
	MaxValue int64 `json:"max_value,omitempty"`
	// Pool, if not empty, makes the worker a member of that pool.
	Pool string `json:"pool,omitempty"`
	// MaxPending is how many calls the worker holds at once, queued or
	// running, before it refuses more with ErrOverloaded; 0 for the
	// default.
	MaxPending int `json:"max_pending,omitempty"`
	// User and Password are the NATS user the master connects as.
	User     string `json:"user,omitempty"`
	Password string `json:"password,omitempty"`
	// Creds, TLSCert, TLSKey and TLSCA are the files the master presents
	// to its NATS server, for the worker to present the same: a
	// credentials file (user JWT and nkey seed), a client certificate and
	// its key, and the certificate authority of the server's certificate.
	Creds   string `json:"creds,omitempty"`
	TLSCert string `json:"tls_cert,omitempty"`
	TLSKey  string `json:"tls_key,omitempty"`
	TLSCA   string `json:"tls_ca,omitempty"`
}

// Env returns the environment entry that carries c.
func (c *WorkerConfig) Env() string {
	b, _ := json.Marshal(c)
	return EnvWorker + "=" + string(b)
}

// WorkerConfigFromEnv reads the worker configuration from the environment.
// ok is false when the process is not a spawned worker. When the
// configuration is complete but the master speaks another protocol
// version, it returns the configuration with an error wrapping
// [ErrProtocolVersion], so that the worker can still join the master's
// server and say why it cannot serve in its [Hello]; on any other error c
// is nil.
func WorkerConfigFromEnv() (c *WorkerConfig, ok bool, err error) {
	v, ok := os.LookupEnv(EnvWorker)
	if !ok {
		return nil, false, nil
	}
	c = new(WorkerConfig)
	if err := json.Unmarshal([]byte(v), c); err != nil {
		return nil, true, fmt.Errorf("%w: $%s is not a worker configuration: %v", registry.ErrBadPayload, EnvWorker, err)
	}
	if !ValidID(c.Worker) || !ValidID(c.Master) || c.URL == "" || c.Hello == "" {
		return nil, true, fmt.Errorf("%w: $%s lacks url, worker, master or hello", registry.ErrBadPayload, EnvWorker)
	}
	if c.Version != wireVersion {
		return c, true, fmt.Errorf("%w: the master speaks protocol %d, this worker binary speaks %d: build both from the same processional version", registry.ErrProtocolVersion, c.Version, wireVersion)
	}
	return c, true, nil
}

// Hello is what a worker says once it serves: its id, protocol version,
// process id and functions.
type Hello struct {
	Version   uint64   `msgpack:"version" json:"version"`
	Worker    string   `msgpack:"worker" json:"worker"`
	PID       int      `msgpack:"pid" json:"pid"`
	Error     string   `msgpack:"error,omitempty" json:"error,omitempty"` // why the worker cannot serve
	Functions []string `msgpack:"functions" json:"functions"`
	// Streams are those of Functions that are streams (bus.RegisterStream).
	Streams []string `msgpack:"streams,omitempty" json:"streams,omitempty"`
	// ShmDomain is the worker's shm.Domain: a master of the same domain
	// shares its /dev/shm, and sends it buffers by reference.
	ShmDomain string `msgpack:"shm_domain,omitempty" json:"shm_domain,omitempty"`
	// Epoch is the worker's epoch when it answered, as its heartbeat
	// acknowledgements carry it: its process (high half) and its
	// reconnects (low half); 0 from a worker that does not say.
	Epoch uint64 `msgpack:"epoch,omitempty" json:"epoch,omitempty"`
}

// NewHello describes this process as worker id.
func NewHello(worker string) *Hello {
	fs := registry.Functions()
	names := make([]string, len(fs))
	var streams []string
	for i, f := range fs {
		names[i] = f.Name()
		if f.IsStream() {
			streams = append(streams, f.Name())
		}
	}
	return &Hello{Version: wireVersion, Worker: worker, PID: os.Getpid(), Functions: names, Streams: streams, ShmDomain: shm.Domain()}
}

// Check returns an error wrapping [ErrProtocolVersion] when h comes from a
// worker that speaks another protocol, or the error the worker reported.
func (h *Hello) Check() error {
	if h.Version != wireVersion {
		return fmt.Errorf("%w: worker %s speaks protocol %d, this master speaks %d: build both from the same processional version", registry.ErrProtocolVersion, h.Worker, h.Version, wireVersion)
	}
	if h.Error != "" {
		return fmt.Errorf("worker %s cannot serve: %s", h.Worker, h.Error)
	}
	return nil
}
