package remote

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"runtime/debug"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/troupe-dev/troupe/internal/wirecheck"
)

// Types is one node's registry of actor types. Only types added here can be
// instantiated, and only their callable methods can be reached from the wire.
// It is safe for concurrent use; the zero value is not usable, call NewTypes.
type Types struct {
	mu      sync.RWMutex
	m       map[string]*Type
	changed chan struct{} // closed (and replaced) by Add
}

// NewTypes returns an empty registry.
func NewTypes() *Types { return &Types{m: make(map[string]*Type)} }

// Add registers t under its name. A name can be registered once.
func (ts *Types) Add(t *Type) error {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if _, ok := ts.m[t.name]; ok {
		return fmt.Errorf("%w: %q", ErrDuplicateType, t.name)
	}
	ts.m[t.name] = t
	if ts.changed != nil {
		close(ts.changed)
		ts.changed = nil
	}
	return nil
}

// changes returns a channel closed at the next Add.
func (ts *Types) changes() <-chan struct{} {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.changed == nil {
		ts.changed = make(chan struct{})
	}
	return ts.changed
}

// Lookup returns the type registered under name.
func (ts *Types) Lookup(name string) (*Type, bool) {
	ts.mu.RLock()
	t, ok := ts.m[name]
	ts.mu.RUnlock()
	return t, ok
}

// all returns the registered types, in no order.
func (ts *Types) all() []*Type {
	ts.mu.RLock()
	defer ts.mu.RUnlock()
	out := make([]*Type, 0, len(ts.m))
	for _, t := range ts.m {
		out = append(out, t)
	}
	return out
}

// Names returns the registered type names, sorted.
func (ts *Types) Names() []string {
	ts.mu.RLock()
	defer ts.mu.RUnlock()
	names := make([]string, 0, len(ts.m))
	for n := range ts.m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Register builds the Type of *T and adds it to ts.
func Register[T any](ts *Types, name string, newFn func() *T) (*Type, error) {
	t, err := NewType(name, newFn)
	if err != nil {
		return nil, err
	}
	if err := ts.Add(t); err != nil {
		return nil, err
	}
	return t, nil
}

// Type is a registered actor type: its name, its producer and its method
// table, built once by reflection.
type Type struct {
	name    string
	rtype   reflect.Type // *T
	newFn   func() reflect.Value
	methods map[string]*method
	byIndex []*method         // methods by their index
	skipped map[string]string // exported method -> why it is not callable

	// idle overrides Config.IdleTimeout for this type (SetIdleTimeout);
	// zero: the Endpoint's, negative: never passivated.
	idle time.Duration
}

// SetIdleTimeout sets how long an activation of t may go without a call
// before it is passivated, overriding Config.IdleTimeout: zero means the
// Endpoint's, negative never. Set it before adding t to a Types.
func (t *Type) SetIdleTimeout(d time.Duration) { t.idle = d }

// Lifecycle hooks: methods of these names and shapes are not callable;
// the Endpoint runs them when an activation starts (before its first
// call; an error fails the activation, which its supervisor restarts) and
// when it ends (passivation, a move, a stop or the node's close).
type (
	// Activator is implemented by types with an OnActivate hook.
	Activator interface {
		OnActivate(ctx context.Context) error
	}
	// Deactivator is implemented by types with an OnDeactivate hook.
	Deactivator interface {
		OnDeactivate(ctx context.Context) error
	}
)

// lifecycleHook reports whether the exported method name is a lifecycle
// hook rather than a callable method.
func lifecycleHook(name string) bool { return name == "OnActivate" || name == "OnDeactivate" }

var (
	ctxType = reflect.TypeFor[context.Context]()
	errType = reflect.TypeFor[error]()
)

// NewType builds the method table of *T. Callable methods are the exported
// methods of *T shaped
//
//	func (x *T) M([ctx context.Context,] args...) ([R,] [error])
//
// with ctx optional and first, zero or more msgpack-encodable arguments (not
// variadic, no chan, func or unsafe.Pointer, no context.Context but the
// first), and at most one result beside an optional trailing error. Other
// exported methods are skipped: they are unreachable, and a call to one fails
// with ErrUnknownMethod naming the reason.
func NewType[T any](name string, newFn func() *T) (*Type, error) {
	if name == "" {
		return nil, fmt.Errorf("%w: empty name", ErrBadType)
	}
	if newFn == nil {
		return nil, fmt.Errorf("%w: %q: nil producer", ErrBadType, name)
	}
	rt := reflect.TypeFor[*T]()
	t := &Type{
		name:    name,
		rtype:   rt,
		methods: make(map[string]*method),
		skipped: make(map[string]string),
		newFn: func() reflect.Value {
			p := newFn()
			if p == nil {
				return reflect.Value{}
			}
			return reflect.ValueOf(p)
		},
	}
	for i := range rt.NumMethod() {
		m := rt.Method(i)
		if lifecycleHook(m.Name) {
			if ft := m.Type; ft.NumIn() != 2 || ft.In(1) != ctxType || ft.NumOut() != 1 || ft.Out(0) != errType {
				t.skipped[m.Name] = "a lifecycle hook must be func(context.Context) error"
			}
			continue
		}
		mm, why := buildMethod(name, m)
		if why != "" {
			t.skipped[m.Name] = why
			continue
		}
		mm.fast = fastInvoker[*T](m.Func.Interface(), m.Name)
		mm.index = len(t.byIndex)
		t.byIndex = append(t.byIndex, mm)
		t.methods[m.Name] = mm
	}
	return t, nil
}

func buildMethod(typeName string, m reflect.Method) (*method, string) {
	ft := m.Type // receiver first
	if ft.IsVariadic() {
		return nil, "variadic methods are not callable"
	}
	mm := &method{name: m.Name, full: typeName + "." + m.Name, fn: m.Func}
	first := 1
	if ft.NumIn() > 1 && ft.In(1) == ctxType {
		mm.hasCtx = true
		first = 2
	}
	for i := first; i < ft.NumIn(); i++ {
		in := ft.In(i)
		if in == ctxType {
			return nil, "context.Context must be the first argument"
		}
		if !encodable(in) {
			return nil, fmt.Sprintf("argument %d (%s) cannot be encoded", i-first, in)
		}
		mm.in = append(mm.in, in)
	}
	switch ft.NumOut() {
	case 0:
	case 1:
		if ft.Out(0) == errType {
			mm.hasErr = true
		} else {
			mm.result = ft.Out(0)
		}
	case 2:
		if ft.Out(1) != errType {
			return nil, "the second result must be error"
		}
		mm.result, mm.hasErr = ft.Out(0), true
	default:
		return nil, "more than two results"
	}
	if mm.result != nil && (!encodable(mm.result) || mm.result == errType) {
		return nil, fmt.Sprintf("result (%s) cannot be encoded", mm.result)
	}
	return mm, ""
}

// encodable reports whether values of t can plausibly travel as msgpack.
func encodable(t reflect.Type) bool { return encodableSeen(t, nil) }

// encodableSeen is encodable, cut at types already being looked at: a
// self-referential type (type L []L) is as encodable as its other parts.
func encodableSeen(t reflect.Type, seen map[reflect.Type]bool) bool {
	switch t.Kind() {
	case reflect.Chan, reflect.Func, reflect.UnsafePointer, reflect.Uintptr:
		return false
	case reflect.Pointer, reflect.Slice, reflect.Array, reflect.Map:
		if seen[t] {
			return true
		}
		if seen == nil {
			seen = make(map[reflect.Type]bool)
		}
		seen[t] = true
		if t.Kind() == reflect.Map && !encodableSeen(t.Key(), seen) {
			return false
		}
		return encodableSeen(t.Elem(), seen)
	}
	return true
}

// Name returns the registered name.
func (t *Type) Name() string { return t.name }

// Methods returns the names of the callable methods, sorted.
func (t *Type) Methods() []string {
	names := make([]string, 0, len(t.methods))
	for n := range t.methods {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Skipped returns the exported methods that are not callable, each with the
// reason.
func (t *Type) Skipped() map[string]string {
	out := make(map[string]string, len(t.skipped))
	for k, v := range t.skipped {
		out[k] = v
	}
	return out
}

// New calls the producer and returns a fresh instance. A producer that
// returns nil gives an error.
func (t *Type) New() (*Object, error) {
	v := t.newFn()
	if !v.IsValid() {
		return nil, fmt.Errorf("%w: %q: producer returned nil", ErrBadType, t.name)
	}
	return &Object{typ: t, recv: v, ptr: v.Interface(), args: make([][]reflect.Value, len(t.byIndex))}, nil
}

// method is one entry of a method table.
type method struct {
	index  int // in Type.byIndex and Object.args
	name   string
	full   string // "Type.Method", for error messages
	fn     reflect.Value
	hasCtx bool
	in     []reflect.Type
	result reflect.Type // nil when the method returns no value
	hasErr bool
	fast   fastFn // the typed invoker (adapt.go); nil for other shapes
	// outcomes counts the calls that reached the method (or its argument
	// decoding) by outcome: index 0 for success, else the error's Code.
	outcomes [outcomeSlots]atomic.Uint64
	// latency is the time from the arrival of the calls that reached the
	// method to their reply (to the method's return for a one-way call).
	latency histogram
}

// outcomeSlots bounds the codes counted per method (Codes are small).
const outcomeSlots = 16

// count records the outcome of one call of m.
func (m *method) count(err error) {
	code := CodeOK
	if err != nil {
		code = CodeInternal
		var re *Error
		if errors.As(err, &re) {
			code = re.Code
		}
	}
	if int(code) < outcomeSlots {
		m.outcomes[code].Add(1)
	}
}

// countLast counts err as the outcome of the latest invoke.
func (o *Object) countLast(err error) {
	if m := o.last; m != nil {
		m.count(err)
	}
}

// observeLast records the latency of the latest invoke, whose request
// arrived at start and ended at end (monoNow readings).
func (o *Object) observeLast(start, end int64) {
	if m := o.last; m != nil {
		m.latency.observe(time.Duration(end - start))
	}
}

// reachedMethod reports whether a call that failed with code got as far as
// its method (or its argument decoding), and so is counted in Stats.
func reachedMethod(code Code) bool {
	switch code {
	case CodeApplication, CodePanicked, CodeBadArgs:
		return true
	}
	return false
}

// countPanic counts a panic of the latest invoke that went on to the
// engine.
func (o *Object) countPanic() {
	if m := o.last; m != nil {
		m.outcomes[CodePanicked].Add(1)
	}
}

// MethodStats is what a method's calls on this node came to.
type MethodStats struct {
	Type, Method string
	Outcomes     map[Code]uint64 // by outcome; CodeOK for success; only non-zero ones
	// Latency is the time from the arrival of each of those calls to its
	// reply (to the method's return for a one-way call).
	Latency Histogram
}

// Stats returns, for every callable method of every type, the outcomes of
// its calls on this node so far (calls that reached the method: not the
// ones refused before, for ownership or a full mailbox).
func (ts *Types) Stats() []MethodStats {
	ts.mu.RLock()
	types := make([]*Type, 0, len(ts.m))
	for _, t := range ts.m {
		types = append(types, t)
	}
	ts.mu.RUnlock()
	var out []MethodStats
	for _, t := range types {
		for _, m := range t.byIndex {
			st := MethodStats{Type: t.name, Method: m.name, Outcomes: map[Code]uint64{}, Latency: m.latency.snapshot()}
			for c := range m.outcomes {
				if v := m.outcomes[c].Load(); v > 0 {
					st.Outcomes[Code(c)] = v
				}
			}
			out = append(out, st)
		}
	}
	slices.SortFunc(out, func(a, b MethodStats) int {
		if c := strings.Compare(a.Type, b.Type); c != 0 {
			return c
		}
		return strings.Compare(a.Method, b.Method)
	})
	return out
}

// Object is one instance of a registered type together with its method
// table. Invoke is not safe for concurrent use on one Object: the runtime
// runs one call at a time per actor.
//
// An Object keeps, per method, the reflect.Values its arguments are decoded
// into, and a cell for the ctx, so a call allocates nothing for them. Every
// call zeroes them when it ends (even by a panic): the next call decodes into
// zero values, never into what a previous call left (msgpack would reuse a
// slice's array or merge into a map), and the Object retains nothing.
type Object struct {
	typ  *Type
	recv reflect.Value
	ptr  any               // recv.Interface(): the *T the typed invokers assert
	args [][]reflect.Value // per method index: its argument cells, made on first use
	ctx  context.Context   // the ctx of the call in progress; nil between calls
	last *method           // the method of the latest invoke, nil if unknown: its outcome is counted after
}

// Type returns the object's type.
func (o *Object) Type() *Type { return o.typ }

// Value returns the underlying *T.
func (o *Object) Value() any { return o.recv.Interface() }

// PanicError is the local cause (errors.As through Unwrap) of a CodePanicked
// *Error returned by Invoke: the panic value and the stack where it happened.
// It does not cross the wire.
type PanicError struct {
	Value any
	Stack []byte
}

func (p *PanicError) Error() string { return fmt.Sprintf("panic: %v", p.Value) }

// Invoke runs method name with the msgpack-encoded argument array args and
// appends the encoded result (nil when the method returns no value) to dst.
// Failures are *Error values with Actor and Node left empty for the caller to
// fill: CodeUnknownMethod, CodeBadArgs (naming the argument index and type),
// CodeApplication (the method's own error), CodePanicked (the panic, with a
// *PanicError cause) and CodeInternal (the result did not encode). On
// failure the returned slice is dst unchanged.
func (o *Object) Invoke(ctx context.Context, dst []byte, name string, args []byte) ([]byte, error) {
	out, err := o.invoke(ctx, dst, name, args, true, true)
	o.countLast(err)
	return out, err
}

// invoke is Invoke; with catch false a panic propagates to the caller (the
// actor engine, which recovers it and supervises), and with encode false the
// result is dropped rather than encoded (a one-way call has no reply).
func (o *Object) invoke(ctx context.Context, dst []byte, name string, args []byte, catch, encode bool) (out []byte, err error) {
	m := o.typ.methods[name]
	o.last = m
	if m == nil {
		msg := "no callable method " + o.typ.name + "." + name
		if why, ok := o.typ.skipped[name]; ok {
			msg += ": " + why
		}
		return dst, &Error{Code: CodeUnknownMethod, Method: name, Message: msg}
	}
	if catch {
		defer func() {
			p := recover()
			if p == nil {
				return
			}
			pe := &PanicError{Value: p, Stack: debug.Stack()}
			out, err = dst, &Error{Code: CodePanicked, Method: name,
				Message: fmt.Sprintf("%s: %v", m.full, p), cause: pe}
		}()
	}
	if m.fast != nil {
		if out, err, ok := m.fast(o, ctx, dst, args, encode); ok {
			return out, err
		}
	}
	var inBuf [6]reflect.Value
	ins := append(inBuf[:0], o.recv)
	if m.hasCtx {
		if ctx == nil {
			ctx = context.Background()
		}
		o.ctx = ctx
		ins = append(ins, reflect.ValueOf(&o.ctx).Elem())
	}
	cells := o.cells(m)
	defer o.clear(cells)
	ins, err = m.decodeArgs(ins, cells, args)
	if err != nil {
		return dst, err
	}
	outs := m.fn.Call(ins)
	if m.hasErr {
		if e := outs[len(outs)-1]; !e.IsNil() {
			ae := e.Interface().(error)
			return dst, &Error{Code: CodeApplication, Method: name, Message: ae.Error(), cause: ae}
		}
	}
	if !encode {
		return dst, nil
	}
	if m.result == nil {
		return append(dst, mpNil), nil
	}
	out, encErr := appendValue(dst, outs[0])
	if encErr != nil {
		return dst, &Error{Code: CodeInternal, Method: name,
			Message: fmt.Sprintf("%s: result (%s) did not encode: %v", m.full, m.result, encErr)}
	}
	return out, nil
}

// cells returns the argument cells of m, making them on first use.
func (o *Object) cells(m *method) []reflect.Value {
	c := o.args[m.index]
	if c == nil && len(m.in) > 0 {
		c = make([]reflect.Value, len(m.in))
		for i, t := range m.in {
			c[i] = reflect.New(t).Elem()
		}
		o.args[m.index] = c
	}
	return c
}

// clear zeroes the argument cells and the ctx cell after a call, so the
// Object retains nothing of it.
func (o *Object) clear(cells []reflect.Value) {
	o.ctx = nil
	for _, c := range cells {
		c.SetZero()
	}
}

// decodeArgs appends to ins one value per argument in args, decoded into
// cells (zero values of the argument types, one per argument). Every
// argument is validated before msgpack sees any (wirecheck: lengths within
// the bytes, nesting within wirecheck.MaxDepth counting the argument
// array), and a value that does not fit its parameter is an error even
// where msgpack would panic: every failure is a CodeBadArgs *Error for the
// caller, before the method runs, and never a panic that would reach the
// actor's supervisor.
func (m *method) decodeArgs(ins, cells []reflect.Value, args []byte) ([]reflect.Value, error) {
	r := reader{b: args}
	n := r.arrayHeader()
	if r.err != nil {
		return ins, m.badArgs("arguments are not a msgpack array")
	}
	if n != len(m.in) {
		return ins, m.badArgs(fmt.Sprintf("want %d argument%s, got %d", len(m.in), plural(len(m.in)), n))
	}
	start := r.off
	for i, t := range m.in {
		size, err := wirecheck.Value(args[r.off:], wirecheck.MaxDepth-1)
		if err != nil {
			return ins, m.badArgs(fmt.Sprintf("argument %d (%s): %v", i, t, err))
		}
		r.off += size
	}
	if r.off != len(args) {
		return ins, m.badArgs(fmt.Sprintf("%d trailing bytes after the arguments", len(args)-r.off))
	}
	if n == 0 {
		return ins, nil
	}
	d := getDecoder(args[start:])
	defer putDecoder(d)
	for i, t := range m.in {
		v := cells[i]
		if err := decodeValueSafe(d, v); err != nil {
			return ins, m.badArgs(fmt.Sprintf("argument %d (%s): %v", i, t, err))
		}
		ins = append(ins, v)
	}
	return ins, nil
}

func (m *method) badArgs(msg string) *Error {
	return &Error{Code: CodeBadArgs, Method: m.name, Message: m.full + ": " + msg}
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
