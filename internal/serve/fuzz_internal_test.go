package serve

import (
	"errors"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/processional/processional/bus"
	"github.com/processional/processional/internal/wire"
)

// FuzzOperations sends crafted arguments to every object operation, on a
// table holding a gadget: none may panic in the worker's own code (a
// panic would come back as ErrPanic), whatever the bytes.
func FuzzOperations(f *testing.F) {
	w := newTestWorker()
	ref, err := keepOwned(w, &gadget{N: 1, Tags: []string{"x"}}, tMaster)
	if err != nil {
		f.Fatal(err)
	}
	target := wire.AppendRef(nil, ref)
	seed := func(v any) {
		b, err := msgpack.Marshal(v)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	seed(callArg{Target: target, Method: "Add", Args: []msgpack.RawMessage{{0x02}}})
	seed(callArg{Target: target, Method: "Label", Args: []msgpack.RawMessage{{0xa1, 'p'}, {0x01}, {0x02}}})
	seed(memberArg{Target: target, Key: msgpack.RawMessage{0xa1, 'N'}})
	seed(memberArg{Target: target, Key: msgpack.RawMessage{0xa4, 'T', 'a', 'g', 's'}, WantRef: true})
	seed(setArg{Target: target, Key: msgpack.RawMessage{0xa1, 'N'}, Value: msgpack.RawMessage{0x05}})
	seed([]uint64{ref.ID, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		for name, op := range ops {
			if name == "@wrap" || name == "@release" {
				continue // @wrap runs registered functions; @release would empty the table
			}
			cl := &call{key: callKey{tMaster, 1}, name: name, op: op, arg: data}
			if _, err := w.invoke(cl); errors.Is(err, bus.ErrPanic) && !strings.Contains(err.Error(), "gadget: boom") {
				t.Fatalf("%s panicked on % x: %v", name, data, err)
			}
		}
	})
}
