// Package server runs a persistent worker with its own embedded NATS
// server, for many masters at once: what `processional server` runs.
//
// [Start] starts the NATS server (loopback TCP with a token, and
// optionally a Unix socket bridged to it) and a worker on an in-process
// connection. Masters reach it with master.Connect; each holds its own
// lease and its own order of calls, and one closing or dying touches no
// other. It serves until [Server.Close].
package server
