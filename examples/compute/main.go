package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"slices"
	"time"

	"github.com/troupe-dev/troupe"
)

//go:generate go run github.com/troupe-dev/troupe/cmd/troupe gen -type Worker

func main() {
	tasks := flag.Int("tasks", 12, "tasks to submit")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := run(ctx, os.Stdout, *tasks); err != nil {
		log.Fatal(err)
	}
}

// Task is one unit of work: compute(A, B).
type Task struct {
	ID, A, B int
	Attempt  int  // 1 for the first try
	Flaky    bool // fails on its first attempt
}

// Result is a task's outcome and the node that ran it.
type Result struct {
	Value   int
	Node    string
	Attempt int
}

// Worker runs tasks; one instance per node.
type Worker struct{ node string }

// errTransient is the failure of a flaky task's first attempt.
var errTransient = errors.New("transient failure")

// Compute runs the task: A*B + A+B, after a short pretend computation.
func (w *Worker) Compute(ctx context.Context, t Task) (Result, error) {
	if t.Flaky && t.Attempt == 1 {
		return Result{}, fmt.Errorf("task %d on %s: %w", t.ID, w.node, errTransient)
	}
	select { // the work itself
	case <-time.After(time.Millisecond):
	case <-ctx.Done():
		return Result{}, ctx.Err()
	}
	return Result{Value: t.A*t.B + t.A + t.B, Node: w.node, Attempt: t.Attempt}, nil
}

// Queue submits tasks to workers round-robin.
type Queue struct {
	workers    []WorkerRef // typed refs, from worker_troupe.go
	next       int
	MaxRetries int
	say        func(string, ...any)
}

// AsyncResult is a submitted task, like Celery's.
type AsyncResult struct {
	q      *Queue
	task   Task
	worker int // index of the worker running the current attempt
	fut    *troupe.Future[Result]
}

// Delay submits compute(a, b) and returns at once.
func (q *Queue) Delay(ctx context.Context, id, a, b int, flaky bool) *AsyncResult {
	t := Task{ID: id, A: a, B: b, Attempt: 1, Flaky: flaky}
	w := q.next % len(q.workers)
	q.next++
	return &AsyncResult{q: q, task: t, worker: w, fut: q.submit(ctx, w, t)}
}

func (q *Queue) submit(ctx context.Context, worker int, t Task) *troupe.Future[Result] {
	return q.workers[worker].Compute(ctx, t)
}

// Get waits for the result; a task whose method failed is submitted again
// (to the worker after the one that failed) up to MaxRetries times. Other errors (the node is
// unreachable, the deadline passed) are returned as they are.
func (r *AsyncResult) Get(ctx context.Context) (Result, error) {
	for {
		res, err := r.fut.Await(ctx)
		if err == nil || !errors.Is(err, troupe.ErrApplication) || r.task.Attempt > r.q.MaxRetries {
			return res, err
		}
		var e *troupe.Error
		errors.As(err, &e)
		r.q.say("  task %2d attempt %d failed on %s (%s): retrying", r.task.ID, r.task.Attempt, e.Node, e.Message)
		r.task.Attempt++
		r.worker = (r.worker + 1) % len(r.q.workers)
		r.fut = r.q.submit(ctx, r.worker, r.task)
	}
}

// Summary is what the test checks.
type Summary struct {
	PerNode map[string]int
	Retried int
}

func run(ctx context.Context, out io.Writer, tasks int) (*Summary, error) {
	say := func(format string, args ...any) { fmt.Fprintf(out, format+"\n", args...) }
	var nodes []*troupe.Node
	defer func() {
		for _, n := range nodes {
			n.Close()
		}
	}()
	for i := range 3 {
		cfg := troupe.Config{Name: fmt.Sprintf("n%d", i+1)}
		if i > 0 {
			cfg.Join = []string{nodes[0].Addr()}
		}
		n, err := troupe.Start(ctx, cfg)
		if err != nil {
			return nil, err
		}
		nodes = append(nodes, n)
		id := n.ID()
		if err := RegisterWorker(n, func() *Worker { return &Worker{node: id} }); err != nil {
			return nil, err
		}
	}
	say("cluster: %v", nodes[0].Members())
	// The app that submits tasks is a client, as a Celery producer is: it
	// calls and spawns, but holds no replica and hosts nothing.
	app, err := troupe.Start(ctx, troupe.Config{Name: "app", Client: true, Join: []string{nodes[0].Addr()}})
	if err != nil {
		return nil, err
	}
	defer app.Close()
	say("app: a client of %v", app.Members())
	q := &Queue{MaxRetries: 2, say: say}
	for _, n := range nodes {
		r, err := SpawnWorker(ctx, app, troupe.OnNode(n.ID()))
		if err != nil {
			return nil, err
		}
		q.workers = append(q.workers, r)
	}
	say("workers: one per node; every 4th task fails on its first attempt")

	results := make([]*AsyncResult, tasks)
	for i := range results {
		results[i] = q.Delay(ctx, i, i, 10*i, i%4 == 3)
	}
	say("submitted %d tasks (Delay returned at once); getting the results:", tasks)
	sum := &Summary{PerNode: map[string]int{}}
	for i, r := range results {
		res, err := r.Get(ctx)
		if err != nil {
			return nil, fmt.Errorf("task %d: %w", i, err)
		}
		want := i*10*i + i + 10*i
		if res.Value != want {
			return nil, fmt.Errorf("task %d = %d, want %d", i, res.Value, want)
		}
		say("task %2d: compute(%d, %d) = %d on %s (attempt %d)", i, i, 10*i, res.Value, res.Node, res.Attempt)
		sum.PerNode[res.Node]++
		if res.Attempt > 1 {
			sum.Retried++
		}
	}
	ids := make([]string, 0, len(sum.PerNode))
	for id := range sum.PerNode {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		say("%s ran %d tasks", id, sum.PerNode[id])
	}
	say("%d tasks retried after a failure", sum.Retried)
	return sum, nil
}
