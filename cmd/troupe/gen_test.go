package main

import (
	"context"
	"errors"
	"flag"
	"go/types"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/troupe-dev/troupe"
	"github.com/troupe-dev/troupe/cmd/troupe/testdata/genpkg"
	"github.com/troupe-dev/troupe/cmd/troupe/testdata/genshapes"
	"github.com/troupe-dev/troupe/remote"
)

var update = flag.Bool("update", false, "rewrite the golden files of troupe gen")

// goldens are gen's output checked in: genpkg's is a Go file of genpkg, so
// this test package compiles it (TestGenRefCalls calls through it);
// examples/compute builds with its own and must not fall behind Worker.
var goldens = []struct{ pkg, typ, file string }{
	{"testdata/genpkg", "Counter", "testdata/genpkg/counter_troupe.go"},
	{"../../examples/compute", "Worker", "../../examples/compute/worker_troupe.go"},
}

func TestGenGolden(t *testing.T) {
	for _, g := range goldens {
		t.Run(g.typ, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out.go")
			if code, _, stderr := runCmd(t, "gen", "-type", g.typ, "-pkg", g.pkg, "-o", out); code != 0 {
				t.Fatalf("gen: exit %d: %s", code, stderr)
			}
			got, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			if *update {
				if err := os.WriteFile(g.file, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(g.file)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != string(want) {
				t.Errorf("gen wrote, for %s:\n%s\nwant %s (go test ./cmd/troupe -run TestGenGolden -update rewrites it)", g.typ, got, g.file)
			}
		})
	}
}

// TestGenDefaultOutput writes <type>_troupe.go next to the package source,
// and reads a package whose other files use what an earlier run wrote (and
// whose earlier output is stale).
func TestGenDefaultOutput(t *testing.T) {
	dir := t.TempDir()
	src, err := os.ReadFile("testdata/genpkg/counter.go")
	if err != nil {
		t.Fatal(err)
	}
	stale := genHeader + "\n\npackage genpkg\n\nfunc (r CounterRef) Gone() { undefined() }\n"
	uses := "package genpkg\n\nvar _ CounterRef\n"
	for name, text := range map[string]string{"counter.go": string(src), "counter_troupe.go": stale, "uses.go": uses} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	code, stdout, stderr := runCmd(t, "gen", "-type", "Counter=counter", "-pkg", dir)
	if code != 0 {
		t.Fatalf("gen: exit %d: %s", code, stderr)
	}
	path := filepath.Join(dir, "counter_troupe.go")
	if !strings.Contains(stdout, path) {
		t.Errorf("gen said %q, want it to name %s", stdout, path)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(got), `const CounterType = "counter"`) || strings.Contains(string(got), "Gone") {
		t.Errorf("gen wrote:\n%s\nwant the registered name \"counter\" and no trace of the stale file", got)
	}
}

func TestGenRefusals(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		code int
		want []string // in stderr
	}{
		{"no -type", []string{"gen", "-pkg", "testdata/genpkg"}, 2, []string{"-type is required"}},
		{"bad -type", []string{"gen", "-type", "a.b"}, 2, []string{`"a.b" is not a type name`}},
		{"arguments", []string{"gen", "-type", "Counter", "extra"}, 2, []string{"unexpected arguments"}},
		{"missing type", []string{"gen", "-type", "Nope", "-pkg", "testdata/genpkg"}, 1, []string{"no type Nope"}},
		{"not a package", []string{"gen", "-type", "T", "-pkg", "testdata/none"}, 1, []string{"testdata/none"}},
		{"bad shapes", []string{"gen", "-type", "Shapes", "-pkg", "testdata/genshapes"}, 1, []string{
			"remote: bad type: exported methods that cannot be called",
			"Shapes.Chan: argument 0 (chan int) cannot be encoded",
			"Shapes.Fn: argument 0 (func()) cannot be encoded",
			"Shapes.Variadic: variadic methods are not callable",
			"Shapes.LateCtx: context.Context must be the first argument",
			"Shapes.Three: more than two results",
			"Shapes.ErrErr: result (error) cannot be encoded",
		}},
		{"unexported only", []string{"gen", "-type", "Hidden", "-pkg", "testdata/genshapes"}, 1, []string{
			"Hidden has no callable method"}},
		{"unnameable type", []string{"gen", "-type", "Outer", "-pkg", "testdata/genembed"}, 1, []string{
			"type secret cannot be named outside package github.com/troupe-dev/troupe/cmd/troupe/testdata/genshapes"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"gen", "-o", filepath.Join(t.TempDir(), "out.go")}, tc.args[1:]...)
			code, _, stderr := runCmd(t, args...)
			if code != tc.code {
				t.Errorf("exit %d, want %d (stderr %q)", code, tc.code, stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr %q lacks %q", stderr, w)
				}
			}
		})
	}
}

// TestGenRulesMatchRegister holds gen's rule for callable methods to
// remote.NewType's (which troupe.Register uses) on genshapes.Shapes: the same
// methods are callable, and the others are refused in the same words.
func TestGenRulesMatchRegister(t *testing.T) {
	typ, err := remote.NewType("Shapes", func() *genshapes.Shapes { return &genshapes.Shapes{} })
	if err != nil {
		t.Fatal(err)
	}
	pkg, err := loadPackage(context.Background(), "testdata/genshapes")
	if err != nil {
		t.Fatal(err)
	}
	if len(pkg.errs) > 0 {
		t.Fatalf("type errors: %v", pkg.errs)
	}
	named := pkg.types.Scope().Lookup("Shapes").Type()
	var callableNames []string
	skipped := map[string]string{}
	for sel := range types.NewMethodSet(types.NewPointer(named)).Methods() {
		fn := sel.Obj().(*types.Func)
		if _, why := callable(fn.Name(), fn.Signature()); why != "" {
			skipped[fn.Name()] = why
		} else {
			callableNames = append(callableNames, fn.Name())
		}
	}
	if want := typ.Methods(); !slices.Equal(callableNames, want) {
		t.Errorf("gen's callable methods %v, NewType's %v", callableNames, want)
	}
	want := typ.Skipped()
	for m, why := range want {
		if skipped[m] != why {
			t.Errorf("%s: gen says %q, NewType %q", m, skipped[m], why)
		}
	}
	for m, why := range skipped {
		if _, ok := want[m]; !ok {
			t.Errorf("%s: gen refuses it (%s), NewType does not", m, why)
		}
	}
	if len(callableNames) < 10 || len(skipped) < 10 {
		t.Errorf("%d callable and %d refused shapes: the table lost its cases", len(callableNames), len(skipped))
	}
}

// TestGenRefCalls calls a Counter through the generated (golden) CounterRef
// on a node.
func TestGenRefCalls(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	node, err := troupe.Start(ctx, troupe.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer node.Close()
	if err := genpkg.RegisterCounter(node, func() *genpkg.Counter { return &genpkg.Counter{} }); err != nil {
		t.Fatal(err)
	}
	c, err := genpkg.SpawnCounter(ctx, node, troupe.WithName("c1"))
	if err != nil {
		t.Fatal(err)
	}
	if n, err := c.Add(ctx, 5).Await(ctx); n != 5 || err != nil {
		t.Fatalf("Add = %d, %v", n, err)
	}
	if _, err := c.Add(ctx, -1).Await(ctx); !errors.Is(err, troupe.ErrApplication) {
		t.Errorf("Add(-1) = %v, want ErrApplication", err)
	}
	if _, err := c.Fail(ctx, "no").Await(ctx); !errors.Is(err, troupe.ErrApplication) {
		t.Errorf("Fail = %v, want ErrApplication", err)
	}
	if _, err := c.Wait(ctx, time.Millisecond).Await(ctx); err != nil {
		t.Errorf("Wait = %v", err)
	}
	if p, err := c.With(troupe.Idempotent()).Move(ctx, genpkg.Point{X: 1, Y: 2}, genpkg.Point{X: 3, Y: 3}).Await(ctx); p != (genpkg.Point{X: 3, Y: 6}) || err != nil {
		t.Errorf("Move = %v, %v", p, err)
	}
	if err := c.TellNote(ctx, "a", []string{"b"}, nil, 0); err != nil {
		t.Fatal(err)
	}
	if notes, err := c.Notes(ctx).Await(ctx); !slices.Equal(notes, []string{"a", "b"}) || err != nil {
		t.Errorf("Notes after TellNote = %q, %v", notes, err)
	}
	if _, err := c.Reset(ctx).Await(ctx); err != nil {
		t.Errorf("Reset = %v", err)
	}
	if n, err := c.Get(ctx).Await(ctx); n != 0 || err != nil {
		t.Errorf("Get after Reset = %d, %v", n, err)
	}
	if n, err := c.Ping(ctx).Await(ctx); n != 1 || err != nil {
		t.Errorf("Ping (promoted from Base) = %d, %v", n, err)
	}
	found, err := genpkg.LookupCounter(ctx, node, "c1")
	if err != nil || found.ID != c.ID {
		t.Fatalf("LookupCounter = %v, %v", found, err)
	}
	if _, err := genpkg.NewCounterRef(troupe.Ref{Ref: remote.Ref{ID: "w", Type: "Worker"}}); !errors.Is(err, troupe.ErrTypeMismatch) {
		t.Errorf("NewCounterRef of a Worker = %v, want ErrTypeMismatch", err)
	}
}

// TestGenRefusesNames covers what gen refuses beyond Register's rule: a
// method the typed ref cannot have, a signature that does not type-check.
func TestGenRefusesNames(t *testing.T) {
	for _, tc := range []struct{ name, src, want string }{
		{"field of Ref", "func (*T) ID() string { return \"\" }", "T.ID: the typed ref cannot have a method ID (a field of troupe.Ref)"},
		{"method of Ref", "func (*T) String() string { return \"\" }", "T.String: the typed ref cannot have a method String (a method of troupe.Ref)"},
		{"With", "func (*T) With(n int) {}", "T.With: the typed ref cannot have a method With"},
		{"undefined", "func (*T) M(x Undefined) {}", "T.M: its signature does not type-check"},
		{"generic", "type G[X any] struct{}\nfunc (*G[X]) M() {}\nfunc (*T) M() {}", "G is generic"},
		{"import name", "var fmt = 1\nfunc (*T) M() {}", "declares fmt, a name the generated code imports"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			src := "package p\n\ntype T struct{}\n\n" + tc.src + "\n"
			if err := os.WriteFile(filepath.Join(dir, "p.go"), []byte(src), 0o644); err != nil {
				t.Fatal(err)
			}
			typ := "T"
			if tc.name == "generic" {
				typ = "G"
			}
			code, _, stderr := runCmd(t, "gen", "-type", typ, "-pkg", dir)
			if code != 1 || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit %d, stderr %q; want 1 and %q", code, stderr, tc.want)
			}
		})
	}
}
