// Command compute is the Celery task-queue example (compute.delay(10, 20),
// then result.get()) on troupe: a Worker actor type registered on three
// nodes, Delay submits a task and returns at once with an AsyncResult (a
// troupe Future underneath), Get awaits it. Some tasks fail on their first
// attempt; Get retries a failed task on the next worker, up to a limit, like
// Celery's autoretry_for. It prints which node ran each task, and exits 0.
// The app that spawns the workers and submits the tasks is a client
// (Config.Client), as a Celery producer is not a worker: it holds no
// replica of the registry, never votes and hosts nothing.
//
// Workers are called through WorkerRef, the typed ref that troupe gen wrote
// into worker_troupe.go (go generate ./examples/compute rewrites it after a
// change to Worker's methods): q.workers[i].Compute(ctx, t) returns a
// *troupe.Future[Result], so a misspelled method (Compte) or an argument of
// the wrong type is a compile error, where troupe.Call[Result](ctx, ref,
// "Compte", t) would only fail at run time with ErrUnknownMethod.
//
//	go run ./examples/compute
//	go run ./examples/compute -tasks 30
package main
