// Package codec encodes the values that cross the bus, in msgpack: any
// value a registered function takes or returns, with shared-memory
// buffers as extensions, cycles and excessive nesting refused, and the
// hand-written primitives the envelopes of package wire are made of.
package codec
