package serve

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/processional/processional/bus"
	"github.com/processional/processional/internal/lazyctx"
	"github.com/processional/processional/internal/registry"
	"github.com/processional/processional/internal/wire"
)

// JSON calls. Every registered function is an endpoint of the worker's
// micro service of its own, on proc.<worker>.json.<function>, taking and
// answering JSON, so that the stock nats CLI calls it:
//
//	nats req proc.<worker>.json.sum '[1,2,3]'
//
// `nats micro info processional` lists them, with their argument and result
// types; `nats micro stats processional` counts their requests, errors and
// processing time. The calls of one function run one after the other (its
// endpoint's subscription), those of different functions concurrently; an
// error answers with the micro error headers (Nats-Service-Error,
// Nats-Service-Error-Code) and a JSON body with the fields of the error
// envelope. A stream answers each item as one message, and ends with an
// empty message (see jsonStream).

var badEndpointChar = regexp.MustCompile(`[^A-Za-z0-9_-]`)

// addJSONEndpoints adds an endpoint per registered function; a pool's
// member adds one more per function, on the pool's subject, in the pool's
// queue group.
func (w *Worker) addJSONEndpoints(pool string) error {
	used := map[string]bool{}
	for _, fn := range registry.Functions() {
		name := "json-" + badEndpointChar.ReplaceAllString(fn.Name(), "_")
		for base, i := name, 2; used[name]; i++ {
			name = fmt.Sprintf("%s-%d", base, i)
		}
		used[name] = true
		fn := fn
		err := w.svc.AddEndpoint(name, micro.HandlerFunc(func(req micro.Request) { w.jsonCall(fn, req) }),
			micro.WithEndpointSubject(wire.JSONSubject(w.id, fn.Name())),
			micro.WithEndpointMetadata(map[string]string{
				"format":   "json",
				"function": fn.Name(),
				"argument": fn.ArgType().String(),
				"result":   fn.ResultType().String(),
				"protocol": fmt.Sprint(wire.Version()),
			}))
		if err == nil && pool != "" {
			err = w.svc.AddEndpoint("pool-"+name, micro.HandlerFunc(func(req micro.Request) { w.jsonCall(fn, req) }),
				micro.WithEndpointSubject(wire.PoolJSONSubject(pool, fn.Name())),
				micro.WithEndpointQueueGroup("pool-"+pool),
				micro.WithEndpointMetadata(map[string]string{"format": "json", "function": fn.Name(), "pool": pool}))
		}
		if err != nil {
			return fmt.Errorf("endpoint of %s: %w", fn.Name(), err)
		}
	}
	return nil
}

// jsonCall runs one JSON call, in its endpoint's goroutine.
func (w *Worker) jsonCall(fn *registry.Function, req micro.Request) {
	w.mu.Lock()
	if w.closing {
		w.mu.Unlock()
		w.jsonError(req, fn, "503", fmt.Errorf("%w: worker %s is closing", bus.ErrClosed, w.id))
		return
	}
	w.tasks.Add(1)
	w.mu.Unlock()
	// In the endpoint's goroutine: micro counts a request's error and time
	// when its handler returns, so the answer must be given by then.
	defer w.tasks.Done()
	ctx, cancel := context.WithCancel(w.baseCtx)
	defer cancel()
	end := func() {}
	if req.Headers().Get(wire.ProgressHeader) != "" {
		jp := &jsonProgress{req: req}
		end = jp.end // before the answer: no report after it
		ctx = context.WithValue(ctx, lazyctx.ProgressKey{}, lazyctx.ProgressReporter(jp))
	}
	if fn.IsStream() {
		w.jsonStream(ctx, fn, req, end)
		return
	}
	res, err := invokeJSON(ctx, fn, req.Data())
	end()
	if err != nil {
		code := "500"
		if errors.Is(err, bus.ErrArgumentType) {
			code = "400"
		}
		w.jsonError(req, fn, code, err)
		return
	}
	body, err := json.Marshal(res)
	if err != nil {
		w.jsonError(req, fn, "500", fmt.Errorf("%w: the result of %s as JSON: %v", bus.ErrEncode, fn.Name(), err))
		return
	}
	if err := w.jsonFits(fn, "result", body); err != nil {
		w.jsonError(req, fn, "413", err)
		return
	}
	req.Respond(body)
}

// jsonFits says why body cannot answer a JSON call, if it is over the
// server's max payload: the client would refuse it, and the caller wait
// for nothing. (A JSON caller takes no chunks.)
func (w *Worker) jsonFits(fn *registry.Function, what string, body []byte) error {
	if max := w.maxPayload(); len(body) > max {
		return fmt.Errorf("%w: the %s of %s as JSON is %d bytes, over the server's max payload of %d; call it by the library, which sends it in chunks", bus.ErrTooBig, what, fn.Name(), len(body), max)
	}
	return nil
}

// jsonStream runs one JSON call of a stream: each item answers as one
// message, and an empty message ends the stream (the request-many
// convention, as `nats req --replies 0 --wait-for-empty` reads it). An
// error answers with the micro error headers, then the empty message.
// A JSON caller grants no credit: the producer runs at its own pace. It
// stops when the caller has left: each item carries a reply subject of
// the worker's, numbered, and the server answers an item that nobody
// took with a no-responders status. When such answers come for items one
// after the other over callerGrace (a caller reconnecting, a route
// down for a moment, lose a few items, not the stream), the producer's
// context is cancelled and its next yield returns false.
func (w *Worker) jsonStream(ctx context.Context, fn *registry.Function, req micro.Request, end func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	inbox := w.nc.NewInbox() // not NewRespInbox: the request mux would see it too
	probing := false
	var (
		lost    uint64    // the last item nobody took
		lostRun time.Time // when the run of such items up to lost began
	)
	if sub, err := w.nc.Subscribe(inbox+".*", func(m *nats.Msg) {
		// In the subscription's goroutine, one status at a time.
		seq, err := strconv.ParseUint(m.Subject[len(inbox)+1:], 10, 64)
		if err != nil || m.Header.Get(statusHeader) != noResponders {
			return
		}
		now := time.Now()
		if seq != lost+1 || lostRun.IsZero() {
			lostRun = now // an item between was taken: a new run
		}
		lost = seq
		if now.Sub(lostRun) >= callerGrace {
			cancel(errCallerLeft)
		}
	}); err == nil {
		defer sub.Unsubscribe()
		probing = true
	}
	var seq uint64
	var (
		mu      sync.Mutex // a yield from a goroutine the producer left behind must not answer after the end
		ended   bool
		sendErr error
	)
	err := streamJSON(ctx, fn, req.Data(), func(item any) bool {
		mu.Lock()
		defer mu.Unlock()
		if ended {
			return false
		}
		if context.Cause(ctx) == errCallerLeft {
			sendErr = errCallerLeft // said to nobody: the end, for micro's stats
			return false
		}
		body, err := json.Marshal(item)
		if err != nil {
			sendErr = fmt.Errorf("%w: an item of %s as JSON: %v", bus.ErrEncode, fn.Name(), err)
			return false
		}
		if len(body) == 0 {
			body = []byte("null")
		}
		if err := w.jsonFits(fn, "item", body); err != nil {
			sendErr = err
			return false
		}
		var opts []micro.RespondOpt
		if probing {
			seq++
			reply := inbox + "." + strconv.FormatUint(seq, 10)
			opts = append(opts, func(m *nats.Msg) { m.Reply = reply })
		}
		if err := req.Respond(body, opts...); err != nil {
			sendErr = err
			return false
		}
		return true
	})
	end()
	mu.Lock()
	ended = true
	if err == nil {
		err = sendErr
	}
	mu.Unlock()
	if err != nil {
		code := "500"
		switch {
		case errors.Is(err, bus.ErrArgumentType):
			code = "400"
		case errors.Is(err, bus.ErrTooBig):
			code = "413"
		}
		w.jsonError(req, fn, code, err)
	}
	req.Respond(nil)
}

// A message's status header, and the status the server answers a
// message with a reply subject that nobody receives (nats.go's own
// constants are unexported).
const (
	statusHeader = "Status"
	noResponders = "503"
)

// callerGrace is how long the items of a JSON stream may go to nobody
// before the stream takes its caller for gone.
const callerGrace = 2 * time.Second

// errCallerLeft ends a JSON stream whose caller no longer listens.
var errCallerLeft = errors.New("the JSON caller left: nobody receives the stream's items")

func streamJSON(ctx context.Context, fn *registry.Function, body []byte, emit func(any) bool) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = wire.NewPanicError(r)
		}
	}()
	return fn.StreamJSON(ctx, body, emit)
}

func invokeJSON(ctx context.Context, fn *registry.Function, body []byte) (res any, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = wire.NewPanicError(r)
		}
	}()
	return fn.InvokeJSON(ctx, body)
}

// jsonError answers err: the micro error headers, and the error envelope's
// fields as a JSON body.
func (w *Worker) jsonError(req micro.Request, fn *registry.Function, code string, err error) {
	re := wire.NewRemoteError(w.id, fn.Name(), err)
	body, _ := json.Marshal(re) // strings only
	if len(body)+len(re.Message) > w.maxPayload()-1024 {
		// Over the max payload (its message is the header too): the
		// long fields are cut, and say so, rather than the answer lost.
		budget := w.maxPayload() / 5
		re.Message, re.Stack, re.Panic = cut(re.Message, budget), cut(re.Stack, budget), cut(re.Panic, budget)
		body, _ = json.Marshal(re)
	}
	req.Error(code, re.Message, body)
}

// cut shortens s to about n bytes, on a character's boundary, saying how
// much it cut.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := n
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return fmt.Sprintf("%s… (%d bytes cut: over the server's max payload)", s[:i], len(s)-i)
}
