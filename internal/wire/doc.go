// Package wire is processional's protocol between masters and workers:
// the subjects, the call and reply envelopes and their chunks, the hello
// and the spawned worker's configuration, references to remote objects
// and the object operations, and the error envelope. One definition of
// each, used by master and worker alike; docs/subjects.md describes it.
//
// It opens no connection: its tests need no server.
package wire
