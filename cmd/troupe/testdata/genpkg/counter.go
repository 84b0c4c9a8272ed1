// Package genpkg is what troupe gen's tests generate typed refs for:
// counter_troupe.go is gen's output for Counter, checked in as the golden
// file (go test ./cmd/troupe -run TestGen -update rewrites it), and the test
// that compares it also compiles it and calls a Counter through it.
package genpkg

import (
	"context"
	"errors"
	"time"
)

//go:generate go run github.com/troupe-dev/troupe/cmd/troupe gen -type Counter

// Point is a struct argument and result.
type Point struct{ X, Y int }

// Base is embedded in Counter: its exported methods are Counter's too.
type Base struct{ pings int }

// Ping counts a ping (a promoted method).
func (b *Base) Ping() int {
	b.pings++
	return b.pings
}

// Counter holds a number and has one method of each callable shape.
type Counter struct {
	Base
	n    int
	at   Point
	told []string
}

// Add adds n and returns the sum: ctx, one argument, result and error.
func (c *Counter) Add(ctx context.Context, n int) (int, error) {
	if n < 0 {
		return c.n, errors.New("negative")
	}
	c.n += n
	return c.n, nil
}

// Get returns the count: no ctx, no argument, a result without error.
func (c *Counter) Get() int { return c.n }

// Reset zeroes the count: ctx and nothing else.
func (c *Counter) Reset(ctx context.Context) { c.n = 0 }

// Fail fails with msg: an error and no value.
func (c *Counter) Fail(ctx context.Context, msg string) error { return errors.New(msg) }

// Wait waits for d (a type of another package) or ctx.
func (c *Counter) Wait(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Move moves by two points: two arguments, a struct result.
func (c *Counter) Move(ctx context.Context, by, times Point) (Point, error) {
	c.at = Point{c.at.X + by.X*times.X, c.at.Y + by.Y*times.Y}
	return c.at, nil
}

// Note records notes, under parameter names the typed ref cannot use (r,
// ctx, time, string): no ctx, no result (so the typed ref has TellNote too).
func (c *Counter) Note(r string, ctx []string, time map[string]time.Time, string int) {
	c.told = append(c.told, r)
	c.told = append(c.told, ctx...)
}

// Echo returns its unnamed argument.
func (c *Counter) Echo(string) string { return "echo" }

// Notes returns the notes recorded: a slice result.
func (c Counter) Notes() []string { return c.told }

// reset is unexported: not callable, not on the typed ref.
func (c *Counter) reset() { c.n = 0 }

var _ = (*Counter).reset
