package codec

import (
	"bytes"
	"math"
	"reflect"
	"testing"
)

type onHost struct{}

func (onHost) ShmReceiver() int { return 1 }

// The element-by-element road, which a big-endian host takes (and a
// 32-bit one for int and uint), writes and reads the same bytes as the
// copy.
func TestPackedWithoutCopy(t *testing.T) {
	values := []any{
		[]float64{math.Pi, -0.0, math.Inf(1), math.MaxFloat64, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12},
		[]float32{math.MaxFloat32, -1.5, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16},
		[]int64{math.MinInt64, math.MaxInt64, -1, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16},
		[]int32{math.MinInt32, math.MaxInt32, -1, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16},
		[]int16{math.MinInt16, math.MaxInt16, -1, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16},
		[]int8{math.MinInt8, math.MaxInt8, -1, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16},
		[]uint64{math.MaxUint64, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16},
		[]uint32{math.MaxUint32, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16},
		[]uint16{math.MaxUint16, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16},
		[]int{math.MinInt, math.MaxInt, -1, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16},
		[]uint{math.MaxUint, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16},
	}
	for _, v := range values {
		fast, err := AppendValueWith(nil, v, onHost{})
		if err != nil {
			t.Fatal(err)
		}
		nativeLittle = false
		slow, err := AppendValueWith(nil, v, onHost{})
		back := reflect.New(reflect.TypeOf(v))
		errBack := Unmarshal(fast, back.Interface())
		nativeLittle = true
		if err != nil || !bytes.Equal(fast, slow) {
			t.Fatalf("%T: one at a time % x (%v), copied % x", v, slow, err, fast)
		}
		if errBack != nil || !reflect.DeepEqual(back.Elem().Interface(), v) {
			t.Fatalf("%T: read one at a time: %v, %v", v, back.Elem().Interface(), errBack)
		}
	}
}
