package troupe

import (
	"errors"
	"strings"
	"testing"
)

// misshapen has one callable method and three that can never be called.
type misshapen struct{}

func (m *misshapen) Fine(n int) int           { return n }
func (m *misshapen) Many(xs ...int) int       { return len(xs) }
func (m *misshapen) Three() (int, int, error) { return 0, 0, nil }
func (m *misshapen) Chan(c chan int)          {}

// unexported is not reachable from the wire and is no concern of Register.
func (m *misshapen) unexported(xs ...int) (int, int, int) { return len(xs), 0, 0 }

var _ = (*misshapen).unexported

func TestRegisterNamesUncallableMethods(t *testing.T) {
	c := newTestCluster(t, false, 1, nil)
	err := Register(c.nodes[0], "Misshapen", func() *misshapen { return &misshapen{} })
	if !errors.Is(err, ErrBadType) {
		t.Fatalf("Register = %v, want ErrBadType", err)
	}
	for _, want := range []string{"Misshapen.Many: variadic", "Misshapen.Three: more than two results", "Misshapen.Chan: argument 0"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "Fine") || strings.Contains(err.Error(), "unexported") {
		t.Errorf("error %q names a method that is fine or not exported", err)
	}
	// Nothing was registered: a corrected type can take the name.
	if err := Register(c.nodes[0], "Misshapen", func() *Counter { return &Counter{} }); err != nil {
		t.Fatalf("Register after the refusal: %v", err)
	}
}
