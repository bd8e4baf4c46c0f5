package lazyctx

import (
	"context"
	"errors"
	"go.uber.org/goleak"
	"testing"
	"time"
)

func TestCtx(t *testing.T) {
	t.Run("cancel", func(t *testing.T) {
		var c Ctx
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
		c.Cancel(context.Canceled)
		c.Cancel(context.DeadlineExceeded) // the first cause counts
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
		var c Ctx
		c.SetTimeout(20 * time.Millisecond)
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
	t.Run("unwatched, no timer; Err sees the deadline pass", func(t *testing.T) {
		var c Ctx
		c.SetTimeout(10 * time.Millisecond)
		d, _ := c.Deadline()
		if c.timer != nil {
			t.Fatal("a timer before anyone watched")
		}
		if err := c.Err(); err != nil && time.Now().Before(d) {
			t.Fatalf("Err = %v before the deadline", err)
		}
		// The clock passing the deadline is what Err must see: no event
		// to wait on, by design (no timer runs).
		time.Sleep(time.Until(d) + time.Millisecond)
		if !errors.Is(c.Err(), context.DeadlineExceeded) {
			t.Fatalf("Err = %v after the deadline", c.Err())
		}
		select {
		case <-c.Done():
		default:
			t.Fatal("Done is open after the deadline passed")
		}
	})
	t.Run("cancel stops the timer", func(t *testing.T) {
		var c Ctx
		c.SetTimeout(time.Hour)
		c.Done() // watched: the timer runs
		if c.timer == nil {
			t.Fatal("watched, and no timer")
		}
		c.Cancel(context.Canceled)
		if c.timer.Stop() {
			t.Fatal("the timer still runs after cancel")
		}
	})
}

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestParent(t *testing.T) {
	type key struct{}
	t.Run("unwatched, the parent's end shows in Err", func(t *testing.T) {
		parent, cancel := context.WithCancel(context.WithValue(context.Background(), key{}, "v"))
		c := Ctx{Parent: parent}
		if c.Value(key{}) != "v" {
			t.Fatal("Value does not reach the parent")
		}
		if c.parentStop != nil {
			t.Fatal("linked to the parent before anyone watched")
		}
		cancel()
		if !errors.Is(c.Err(), context.Canceled) {
			t.Fatalf("Err = %v after the parent ended", c.Err())
		}
		<-c.Done()
	})
	t.Run("watched, the parent's end closes Done", func(t *testing.T) {
		parent, cancel := context.WithCancelCause(context.Background())
		c := Ctx{Parent: parent}
		done := c.Done()
		cause := errors.New("the cause")
		cancel(cause)
		<-done
		if c.Err() != context.Canceled {
			t.Fatalf("Err = %v, want context.Canceled as the contract says", c.Err())
		}
		if !errors.Is(context.Cause(&c), cause) {
			t.Fatalf("Cause = %v, want the parent's cause", context.Cause(&c))
		}
		child, stop := context.WithCancel(&c)
		defer stop()
		if child.Err() != context.Canceled {
			t.Fatalf("a derived context's Err = %v, want Canceled", child.Err())
		}
	})
	t.Run("cancel unlinks from the parent", func(t *testing.T) {
		parent, cancel := context.WithCancel(context.Background())
		defer cancel()
		c := Ctx{Parent: parent}
		c.Done()
		c.Cancel(context.Canceled)
		if c.parentStop() {
			t.Fatal("still linked to the parent after Cancel")
		}
		if parent.Err() != nil {
			t.Fatal("the child's cancel reached the parent")
		}
	})
	t.Run("the earlier deadline wins", func(t *testing.T) {
		parent, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		pd, _ := parent.Deadline()
		c := Ctx{Parent: parent}
		c.SetTimeout(time.Hour)
		defer c.Cancel(context.Canceled)
		if d, ok := c.Deadline(); !ok || !d.Equal(pd) {
			t.Fatalf("Deadline = %v, want the parent's %v", d, pd)
		}
		c2 := Ctx{Parent: parent}
		c2.SetTimeout(time.Millisecond)
		defer c2.Cancel(context.Canceled)
		if d, _ := c2.Deadline(); !d.Before(pd) {
			t.Fatalf("Deadline = %v, want its own, before %v", d, pd)
		}
	})
}
