package codec

import (
	"fmt"
	"reflect"
	"strings"
	"sync"

	"github.com/processional/processional/internal/registry"
)

// The msgpack encoder follows pointers, maps, slices and interfaces with
// no memory of where it has been: a value that holds itself would recurse
// until the goroutine's stack limit kills the process, which no recover
// catches. Before encoding a value whose type allows a cycle, the codec
// walks it and refuses a cycle, or nesting past MaxDepth, with registry.ErrEncode.

// mayCycle caches, by type, whether a value of the type can hold itself.
var mayCycle sync.Map // reflect.Type → bool

// encodesItself reports whether msgpack hands values of t to their own
// encoder, which the walk must not look into.
func encodesItself(t reflect.Type) bool {
	return t.Implements(customEncoder) || t.Implements(marshaler) ||
		reflect.PointerTo(t).Implements(customEncoder) || reflect.PointerTo(t).Implements(marshaler)
}

// canCycle reports whether a value of type t may hold itself: whether
// t's graph of element and field types reaches back to one of its own
// types, or holds an interface, which could hold anything.
func canCycle(t reflect.Type) bool {
	if v, ok := mayCycle.Load(t); ok {
		return v.(bool)
	}
	c := typeCycles(t, map[reflect.Type]bool{})
	mayCycle.Store(t, c)
	return c
}

func typeCycles(t reflect.Type, onPath map[reflect.Type]bool) bool {
	if onPath[t] {
		return true
	}
	if encodesItself(t) {
		return false
	}
	onPath[t] = true
	defer delete(onPath, t)
	switch t.Kind() {
	case reflect.Interface:
		return true
	case reflect.Pointer, reflect.Slice, reflect.Array:
		return typeCycles(t.Elem(), onPath)
	case reflect.Map:
		return typeCycles(t.Key(), onPath) || typeCycles(t.Elem(), onPath)
	case reflect.Struct:
		for i := range t.NumField() {
			if f := t.Field(i); encoded(f) && typeCycles(f.Type, onPath) {
				return true
			}
		}
	}
	return false
}

// checkCycles reports a value v that holds itself, or nests deeper than
// MaxDepth, naming the path to where it does.
func checkCycles(v any) error {
	if v == nil {
		return nil
	}
	t := reflect.TypeOf(v)
	if scalar(t.Kind()) || t.Kind() == reflect.Slice && scalar(t.Elem().Kind()) {
		return nil // the common arguments, without the cache's lookup
	}
	rv := reflect.ValueOf(v)
	if !canCycle(t) {
		return nil
	}
	var w cycleWalk
	return w.walk(rv, 0)
}

type cycleKey struct {
	ptr uintptr
	typ reflect.Type
}

type cycleWalk struct {
	onPath map[cycleKey]bool // made at the first pointer, map or slice
	path   []step
}

// step is one step of the path from the value to where the walk is: a
// field, an index, or a map key. It is formatted only for an error.
type step struct {
	field string
	index int
	key   reflect.Value // valid for a map key
}

func (s step) String() string {
	switch {
	case s.field != "":
		return "." + s.field
	case s.key.IsValid():
		return fmt.Sprintf("[%v]", s.key)
	}
	return fmt.Sprintf("[%d]", s.index)
}

func (w *cycleWalk) where() string {
	var b strings.Builder
	n := len(w.path)
	for i, s := range w.path {
		if n > 8 && i == 3 {
			fmt.Fprintf(&b, "…(%d levels)…", n-6)
		}
		if n <= 8 || i < 3 || i >= n-3 {
			b.WriteString(s.String())
		}
	}
	if n == 0 {
		return "the value itself"
	}
	return b.String()
}

// encoded reports whether msgpack encodes field f: exported fields, and
// embedded structs, whose fields it inlines, unless tagged "-".
func encoded(f reflect.StructField) bool {
	name, _, _ := strings.Cut(f.Tag.Get("msgpack"), ",")
	return (f.IsExported() || f.Anonymous) && name != "-"
}

func (w *cycleWalk) walk(v reflect.Value, depth int) error {
	if depth > MaxDepth {
		return fmt.Errorf("%w: %s: nested deeper than %d levels at %s", registry.ErrEncode, v.Type(), MaxDepth, w.where())
	}
	if !v.IsValid() || !canCycle(v.Type()) { // cached: no walk below a value that cannot hold itself
		return nil
	}
	switch v.Kind() {
	case reflect.Interface:
		if v.IsNil() {
			return nil
		}
		return w.walk(v.Elem(), depth)
	case reflect.Pointer, reflect.Map, reflect.Slice:
		if v.IsNil() {
			return nil
		}
		k := cycleKey{v.Pointer(), v.Type()}
		if w.onPath == nil {
			w.onPath = map[cycleKey]bool{}
		}
		if w.onPath[k] {
			return fmt.Errorf("%w: %s holds itself (a cycle) at %s", registry.ErrEncode, v.Type(), w.where())
		}
		w.onPath[k] = true
		defer delete(w.onPath, k)
		switch v.Kind() {
		case reflect.Pointer:
			return w.walk(v.Elem(), depth+1)
		case reflect.Map:
			if !canCycle(v.Type().Elem()) && !canCycle(v.Type().Key()) {
				return nil
			}
			// One key and one value, set in turn: no allocation an entry.
			key, val := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
			var it reflect.MapIter
			it.Reset(v)
			for it.Next() {
				key.SetIterKey(&it)
				val.SetIterValue(&it)
				w.path = append(w.path, step{key: key})
				err := w.walk(val, depth+1)
				w.path = w.path[:len(w.path)-1]
				if err != nil {
					return err
				}
			}
			return nil
		}
		return w.elems(v, depth)
	case reflect.Array:
		return w.elems(v, depth)
	case reflect.Struct:
		t := v.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			if !encoded(f) || !canCycle(f.Type) {
				continue
			}
			w.path = append(w.path, step{field: f.Name})
			err := w.walk(v.Field(i), depth+1)
			w.path = w.path[:len(w.path)-1]
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// elems walks the elements of a slice or an array.
func (w *cycleWalk) elems(v reflect.Value, depth int) error {
	if !canCycle(v.Type().Elem()) {
		return nil
	}
	for i := range v.Len() {
		w.path = append(w.path, step{index: i})
		err := w.walk(v.Index(i), depth+1)
		w.path = w.path[:len(w.path)-1]
		if err != nil {
			return err
		}
	}
	return nil
}

// scalar reports whether values of kind k hold no reference at all.
func scalar(k reflect.Kind) bool {
	return k >= reflect.Bool && k <= reflect.Complex128 || k == reflect.String
}
