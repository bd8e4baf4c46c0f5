package wire

import (
	"fmt"

	"github.com/processional/processional/internal/codec"
	"github.com/processional/processional/internal/registry"
)

// header reads the array header and the version of an envelope of n fields.
func header(r *codec.Reader, n int) error {
	if len(r.B) == 0 {
		return fmt.Errorf("%w: empty message", registry.ErrBadPayload)
	}
	c := r.B[0]
	if c&0xf0 != 0x90 {
		return fmt.Errorf("%w: not a processional envelope (first byte 0x%02x)", registry.ErrBadPayload, c)
	}
	r.B = r.B[1:]
	v := r.Uint()
	if r.Err != nil {
		return fmt.Errorf("%w: envelope version: %v", registry.ErrBadPayload, r.Err)
	}
	if v != wireVersion {
		return fmt.Errorf("%w: the message speaks protocol %d, this binary speaks %d: build both ends from the same processional version", registry.ErrProtocolVersion, v, wireVersion)
	}
	if int(c&0x0f) != n {
		return fmt.Errorf("%w: envelope of %d fields, want %d", registry.ErrBadPayload, c&0x0f, n)
	}
	return nil
}
