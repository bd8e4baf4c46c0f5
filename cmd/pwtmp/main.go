package main

import (
	"fmt"
	"os"
	"sort"
	"time"

	"github.com/processional/processional/shm"
)

func main() {
	data := make([]byte, 32<<10)
	var a, b, c []time.Duration
	buf := make([]byte, 0, 64<<10)
	for range 500 {
		t0 := time.Now()
		t, name, nonce, err := shm.SendTransient(data, os.Getpid())
		if err != nil {
			panic(err)
		}
		t1 := time.Now()
		t.Close()
		t2 := time.Now()
		buf, err = shm.ReceiveTransient(name, len(data), nonce, buf)
		if err != nil {
			panic(err)
		}
		t3 := time.Now()
		a, b, c = append(a, t1.Sub(t0)), append(b, t2.Sub(t1)), append(c, t3.Sub(t2))
	}
	for _, x := range [][]time.Duration{a, b, c} {
		sort.Slice(x, func(i, j int) bool { return x[i] < x[j] })
		fmt.Print(x[len(x)/2], " ")
	}
	fmt.Println()
}
