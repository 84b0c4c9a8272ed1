// Command bench is troupe's benchmark suite: one command that runs the
// standard scenarios and prints a table of their figures, each with its
// setup. It sits beside the call path rather than on it: the local scenarios
// drive the actor engine (package actor) directly, the cluster scenarios
// drive the public API (package troupe) from this process against worker
// processes that it starts itself (this same binary in worker mode, bound to
// 127.0.0.1, ended on exit and on Ctrl-C), so a figure covers the whole path
// of a call: Call, the codec, QUIC, the remote mailbox and the reply.
//
//	go run ./bench                       # every scenario, 2s each
//	go run ./bench -quick                # every scenario, short (CI)
//	go run ./bench -scenario 'local-ask' -duration 5s
//	go run ./bench -json new.json -compare old.json
//	go run ./bench -list                 # the scenarios
//	go run ./bench -v -scenario failover # with the nodes' warnings
//	go run ./bench -scenario at-scale -actors 100000 # kill -9 and restart at scale
//	go run ./bench -scenario failover -fail-timeout 2s # nodes' FailTimeout (800ms)
//
// Progress goes to stderr, the table to stdout. The exit status is non-zero
// only when a scenario fails, never because of a figure.
package main
