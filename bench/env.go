package main

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"
)

// env is what scenarios share: the options, progress output and the
// multi-process cluster, started on first use and ended by close.
type env struct {
	o   *options
	out io.Writer // progress (stderr)
	mu  sync.Mutex

	cl    *cluster
	clErr error
}

func newEnv(o *options, progress io.Writer) *env { return &env{o: o, out: progress} }

func (e *env) logf(format string, args ...any) {
	e.mu.Lock()
	defer e.mu.Unlock()
	fmt.Fprintf(e.out, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05.000")}, args...)...)
}

// bound is the hard limit of one scenario: its measuring time plus room
// for set-up, trials and tear-down.
func (e *env) bound() time.Duration {
	if e.o.quick {
		return 45*time.Second + 10*e.o.duration
	}
	return 3*time.Minute + 10*e.o.duration
}

// trials is how many times a scenario that counts trials repeats.
func (e *env) trials(full, quick int) int {
	if e.o.quick {
		return quick
	}
	return full
}

// rounds is how many alternating rounds a scenario compared with a floor
// runs: the machine is shared and noisy, so each figure is a median.
func (e *env) rounds() int {
	if e.o.quick {
		return 1
	}
	return 3
}

// maxOps bounds every measuring loop in count, beside its time bound.
const maxOps = 50_000_000

// cluster returns the shared multi-process cluster, starting it on first use.
func (e *env) cluster(ctx context.Context) (*cluster, error) {
	e.mu.Lock()
	started := e.cl != nil || e.clErr != nil
	e.mu.Unlock()
	if !started {
		cl, err := startCluster(ctx, e)
		e.mu.Lock()
		e.cl, e.clErr = cl, err
		e.mu.Unlock()
	}
	return e.cl, e.clErr
}

// close ends the cluster and every process it started.
func (e *env) close() {
	if e.cl != nil {
		e.cl.close()
		e.cl = nil
	}
}
