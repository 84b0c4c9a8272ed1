// Package genshapes holds method shapes for troupe gen's tests: Shapes has
// callable methods and methods Register refuses, so the test can hold gen's
// rule to remote.NewType's; Hidden has only unexported methods.
package genshapes

import (
	"context"
	"unsafe"
)

type (
	Point    struct{ X, Y int }
	MyCtx    context.Context // another type: an argument, not the ctx
	CtxAlias = context.Context
	MyErr    error // another type: a result, not the error
	Handle   uintptr
)

// Shapes has one method per shape.
type Shapes struct{}

func (*Shapes) None()                                                    {}
func (*Shapes) Ctx(ctx context.Context)                                  {}
func (*Shapes) Err() error                                               { return nil }
func (*Shapes) Val() int                                                 { return 0 }
func (*Shapes) ValErr(ctx context.Context, a int, b string) (int, error) { return 0, nil }
func (*Shapes) Any(x any) any                                            { return x }
func (*Shapes) Ptr(p *Point) *Point                                      { return p }
func (*Shapes) Map(m map[string][]int) map[string]int                    { return nil }
func (*Shapes) NamedCtx(c MyCtx)                                         {}
func (*Shapes) AliasCtx(c CtxAlias, n int)                               {}
func (*Shapes) NamedErr() MyErr                                          { return nil }
func (Shapes) Value() string                                             { return "" }

func (*Shapes) Chan(ch chan int)                                    {}
func (*Shapes) Fn(ctx context.Context, f func())                    {}
func (*Shapes) Variadic(xs ...int)                                  {}
func (*Shapes) LateCtx(n int, ctx context.Context)                  {}
func (*Shapes) Three() (int, int, error)                            { return 0, 0, nil }
func (*Shapes) NoErr() (int, string)                                { return 0, "" }
func (*Shapes) ErrErr() (error, error)                              { return nil, nil }
func (*Shapes) ChanResult() <-chan int                              { return nil }
func (*Shapes) Unsafe(p unsafe.Pointer)                             {}
func (*Shapes) Uintptr(u uintptr)                                   {}
func (*Shapes) NamedUintptr(h Handle)                               {}
func (*Shapes) MapKey(m map[chan int]string)                        {}
func (*Shapes) SliceOfFn(ctx context.Context, fs []func(int) error) {}
func (*Shapes) PtrToFn(f *func())                                   {}

// Hidden has no exported method: nothing of it is callable.
type Hidden struct{}

func (*Hidden) run() {}

var _ = (*Hidden).run

// Leaky has a callable method whose argument type cannot be named outside
// this package; genembed.Outer embeds it.
type Leaky struct{}

type secret struct{ N int }

func (*Leaky) Take(s []secret) {}
