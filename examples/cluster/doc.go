// Command cluster runs a troupe cluster of three OS processes on 127.0.0.1
// and shows what the cluster does: the launcher is node n1; it writes a
// cluster CA and one certificate per node to a temporary directory, starts
// n2 and n3 as child processes (this same binary), and then shows the
// membership, where registered actors were placed, calls to them, and a
// failover: n3 is killed with SIGKILL, the registry marks it failed and
// restarts its actors on n1 and n2, and the same names answer again. Every
// child is ended on exit, on Ctrl-C, and (on Linux) if the launcher dies.
//
//	go run ./examples/cluster
package main
