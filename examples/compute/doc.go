// Command compute is the Celery task-queue example (compute.delay(10, 20),
// then result.get()) on troupe: a Worker actor type registered on three
// nodes, Delay submits a task and returns at once with an AsyncResult (a
// troupe Future underneath), Get awaits it. Some tasks fail on their first
// attempt; Get retries a failed task on the next worker, up to a limit, like
// Celery's autoretry_for. It prints which node ran each task, and exits 0.
//
//	go run ./examples/compute
//	go run ./examples/compute -tasks 30
package main
