package shm_test

import (
	"fmt"

	"github.com/processional/processional/shm"
)

func ExampleMake() {
	b, v, err := shm.Make[float64](4)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer b.Close()
	for i := range v {
		v[i] = float64(i) / 2
	}
	fmt.Println(b.Len(), b.Shared(), v)

	// A slice of the buffer is the same memory, and holds the segment on
	// its own.
	s, _ := b.Slice(16, 32)
	defer s.Close()
	w, _ := shm.View[float64](s)
	w[0] = 10
	fmt.Println(v)

	// Another holder of the same host opens it by reference.
	name, off, n, _ := s.Ref()
	o, _ := shm.Open(name, off, n, 0)
	defer o.Close()
	u, _ := shm.View[float64](o)
	fmt.Println(u)
	// Output:
	// 32 true [0 0.5 1 1.5]
	// [0 0.5 10 1.5]
	// [10 1.5]
}
