// Package registry holds what a program registers so that it can travel:
// its functions, by name, and its sentinel errors, by name. It also
// defines processional's own sentinel errors, which package bus exports.
//
// It is the only package-level state of processional, written during
// package initialisation (bus.Register, bus.RegisterError) and read after.
package registry
