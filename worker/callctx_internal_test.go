package worker

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestCallCtx(t *testing.T) {
	t.Run("cancel", func(t *testing.T) {
		var c callCtx
		if c.Err() != nil {
			t.Fatal("Err before cancel")
		}
		if _, ok := c.Deadline(); ok {
			t.Fatal("a deadline without a timeout")
		}
		done := c.Done()
		child, stopChild := context.WithCancel(&c)
		defer stopChild()
		fired := make(chan struct{})
		context.AfterFunc(&c, func() { close(fired) })
		stopped := context.AfterFunc(&c, func() { t.Error("a stopped AfterFunc ran") })
		if !stopped() {
			t.Fatal("stop returned false before the context ended")
		}
		c.cancel(context.Canceled)
		c.cancel(context.DeadlineExceeded) // the first cause counts
		<-done
		<-child.Done()
		<-fired
		if !errors.Is(c.Err(), context.Canceled) || !errors.Is(child.Err(), context.Canceled) {
			t.Fatalf("Err = %v, child %v", c.Err(), child.Err())
		}
		select {
		case <-c.Done(): // Done made after the end is closed too
		default:
			t.Fatal("Done after cancel is open")
		}
		ran := make(chan struct{})
		if context.AfterFunc(&c, func() { close(ran) })() {
			t.Fatal("stop succeeded on an ended context")
		}
		<-ran
	})
	t.Run("timeout", func(t *testing.T) {
		var c callCtx
		c.setTimeout(20 * time.Millisecond)
		d, ok := c.Deadline()
		if !ok || time.Until(d) > 20*time.Millisecond {
			t.Fatalf("Deadline = %v, %v", d, ok)
		}
		child, cancel := context.WithTimeout(&c, time.Hour)
		defer cancel()
		if cd, _ := child.Deadline(); !cd.Equal(d) {
			t.Fatalf("a child's deadline %v, want the parent's %v", cd, d)
		}
		<-child.Done()
		if !errors.Is(c.Err(), context.DeadlineExceeded) || !errors.Is(child.Err(), context.DeadlineExceeded) {
			t.Fatalf("Err = %v, child %v", c.Err(), child.Err())
		}
	})
	t.Run("cancel stops the timer", func(t *testing.T) {
		var c callCtx
		c.setTimeout(time.Hour)
		c.cancel(context.Canceled)
		if c.timer.Stop() {
			t.Fatal("the timer still runs after cancel")
		}
	})
}
