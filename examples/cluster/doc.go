// Command cluster runs a troupe cluster of three OS processes on 127.0.0.1
// and shows what the cluster does: the launcher is node n1; it writes a
// cluster CA and one certificate per node to a temporary directory, starts
// n2 and n3 as child processes (this same binary), and then shows the
// membership, where registered actors were placed, calls to them, a virtual
// actor placed by its first call, and a failover: while a pool of Counters
// maps Add over 3000 inputs, n3 is killed with SIGKILL; the map still
// answers every input (retrying on the other workers), the registry marks
// n3 failed and restarts its actors on n1 and n2, and the same names — and
// the virtual actor — answer again. Every
// child is ended on exit, on Ctrl-C, and (on Linux) if the launcher dies.
//
//	go run ./examples/cluster
package main
