package remote

import "context"

// Typed method adapters: for a method whose arguments and result are of
// the fast types of the codec (fastcodec.go), Register builds, once, an
// invoker that calls the method as a Go func value — no reflect.Value.Call
// — and decodes its argument and encodes its result without the msgpack
// library. The shapes covered are
//
//	func (x *T) M([ctx context.Context,] [a A]) [R] [error]
//
// with A and R among int, int64, uint64, string, []byte, bool and float64
// (adapt_table.go lists the instantiations). Other methods keep the
// general, reflective path; so does any call whose argument bytes are not
// in the exact encoding the fast decoder takes, so that both paths give
// the same results and the same errors.

// fastFn runs one call of a method. It reports ok false, having run
// nothing, when args is not in the form it takes.
type fastFn func(o *Object, ctx context.Context, dst, args []byte, encode bool) (out []byte, err error, ok bool)

// appErr is the error of a method that returned one.
func appErr(name string, err error) error {
	return &Error{Code: CodeApplication, Method: name, Message: err.Error(), cause: err}
}

func orBackground(ctx context.Context) context.Context {
	if ctx == nil {
		return context.Background()
	}
	return ctx
}

// appendResult appends the encoded r, or a nil when encode is false.
func appendResult[R any](dst []byte, r R, encode bool) []byte {
	if !encode {
		return dst
	}
	out, _ := appendFastT(dst, &r)
	return out
}

// appendFastT is appendFast for a value of a fast type, without boxing it.
func appendFastT[R any](dst []byte, r *R) ([]byte, bool) {
	switch x := any(r).(type) {
	case *int:
		return appendInt(dst, int64(*x)), true
	case *int64:
		return appendInt(dst, *x), true
	case *uint64:
		return appendUint(dst, *x), true
	case *string:
		return appendString(dst, *x), true
	case *[]byte:
		if *x == nil {
			return append(dst, mpNil), true
		}
		return append(appendBinHeader(dst, len(*x)), *x...), true
	case *bool:
		if *x {
			return append(dst, mpTrue), true
		}
		return append(dst, mpFalse), true
	case *float64:
		return appendFast(dst, *x)
	}
	return dst, false
}

// noResult is what a method without a result answers: nil.
func noResult(dst []byte, encode bool) []byte {
	if !encode {
		return dst
	}
	return append(dst, mpNil)
}

// adapt0 covers methods without arguments or result.
func adapt0[P any](fn any, name string) fastFn {
	call := func(f func(P, context.Context) error) fastFn {
		return func(o *Object, ctx context.Context, dst, args []byte, encode bool) ([]byte, error, bool) {
			if len(args) != 1 || args[0] != 0x90 {
				return dst, nil, false
			}
			if err := f(o.ptr.(P), ctx); err != nil {
				return dst, appErr(name, err), true
			}
			return noResult(dst, encode), nil, true
		}
	}
	switch f := fn.(type) {
	case func(P):
		return call(func(p P, _ context.Context) error { f(p); return nil })
	case func(P) error:
		return call(func(p P, _ context.Context) error { return f(p) })
	case func(P, context.Context):
		return call(func(p P, ctx context.Context) error { f(p, orBackground(ctx)); return nil })
	case func(P, context.Context) error:
		return call(func(p P, ctx context.Context) error { return f(p, orBackground(ctx)) })
	}
	return nil
}

// adapt0R covers methods without arguments and with a result of type R.
func adapt0R[P, R any](fn any, name string) fastFn {
	if _, ok := appendFastT[R](nil, new(R)); !ok {
		return nil
	}
	call := func(f func(P, context.Context) (R, error)) fastFn {
		return func(o *Object, ctx context.Context, dst, args []byte, encode bool) ([]byte, error, bool) {
			if len(args) != 1 || args[0] != 0x90 {
				return dst, nil, false
			}
			r, err := f(o.ptr.(P), ctx)
			if err != nil {
				return dst, appErr(name, err), true
			}
			return appendResult(dst, r, encode), nil, true
		}
	}
	switch f := fn.(type) {
	case func(P) R:
		return call(func(p P, _ context.Context) (R, error) { return f(p), nil })
	case func(P) (R, error):
		return call(func(p P, _ context.Context) (R, error) { return f(p) })
	case func(P, context.Context) R:
		return call(func(p P, ctx context.Context) (R, error) { return f(p, orBackground(ctx)), nil })
	case func(P, context.Context) (R, error):
		return call(func(p P, ctx context.Context) (R, error) { return f(p, orBackground(ctx)) })
	}
	return nil
}

// oneArg decodes the single argument of a one-element argument array, or
// reports false (the general path takes it then).
func oneArg[A any](args []byte) (A, bool) {
	if len(args) < 2 || args[0] != 0x91 {
		var zero A
		return zero, false
	}
	return decodeFast[A](args[1:])
}

// adapt1 covers methods with one argument of type A and no result.
func adapt1[P, A any](fn any, name string) fastFn {
	if _, ok := appendFastT[A](nil, new(A)); !ok {
		return nil
	}
	call := func(f func(P, context.Context, A) error) fastFn {
		return func(o *Object, ctx context.Context, dst, args []byte, encode bool) ([]byte, error, bool) {
			a, ok := oneArg[A](args)
			if !ok {
				return dst, nil, false
			}
			if err := f(o.ptr.(P), ctx, a); err != nil {
				return dst, appErr(name, err), true
			}
			return noResult(dst, encode), nil, true
		}
	}
	switch f := fn.(type) {
	case func(P, A):
		return call(func(p P, _ context.Context, a A) error { f(p, a); return nil })
	case func(P, A) error:
		return call(func(p P, _ context.Context, a A) error { return f(p, a) })
	case func(P, context.Context, A):
		return call(func(p P, ctx context.Context, a A) error { f(p, orBackground(ctx), a); return nil })
	case func(P, context.Context, A) error:
		return call(func(p P, ctx context.Context, a A) error { return f(p, orBackground(ctx), a) })
	}
	return nil
}

// adapt1R covers methods with one argument of type A and a result of
// type R.
func adapt1R[P, A, R any](fn any, name string) fastFn {
	if _, ok := appendFastT[A](nil, new(A)); !ok {
		return nil
	}
	if _, ok := appendFastT[R](nil, new(R)); !ok {
		return nil
	}
	call := func(f func(P, context.Context, A) (R, error)) fastFn {
		return func(o *Object, ctx context.Context, dst, args []byte, encode bool) ([]byte, error, bool) {
			a, ok := oneArg[A](args)
			if !ok {
				return dst, nil, false
			}
			r, err := f(o.ptr.(P), ctx, a)
			if err != nil {
				return dst, appErr(name, err), true
			}
			return appendResult(dst, r, encode), nil, true
		}
	}
	switch f := fn.(type) {
	case func(P, A) R:
		return call(func(p P, _ context.Context, a A) (R, error) { return f(p, a), nil })
	case func(P, A) (R, error):
		return call(func(p P, _ context.Context, a A) (R, error) { return f(p, a) })
	case func(P, context.Context, A) R:
		return call(func(p P, ctx context.Context, a A) (R, error) { return f(p, orBackground(ctx), a), nil })
	case func(P, context.Context, A) (R, error):
		return call(func(p P, ctx context.Context, a A) (R, error) { return f(p, orBackground(ctx), a) })
	}
	return nil
}
