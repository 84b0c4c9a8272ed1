// Command troupe operates a troupe cluster from the shell: it makes the
// cluster's certificate authority and the node certificates, and runs
// dedicated registry members that host no actors (the way to run three or
// five stable voters, as Consul servers or Dapr placement do).
//
//	troupe ca init   [-dir DIR] [-name NAME] [-valid DURATION] [-force]
//	troupe cert issue NAME [-dir DIR] [-ip IP,...] [-dns NAME,...] [-valid DURATION] [-force]
//	troupe node      -name NAME [-addr HOST:PORT] [-join ADDR,...] [-dir DIR] [-data DIR] [-admin HOST:PORT] [-drain DURATION] [-log LEVEL]
//
//	troupe ready     [-admin HOST:PORT] [-name NAME -dir DIR] [-wait DURATION]
//	troupe status    [-admin HOST:PORT] [-name NAME -dir DIR] [-o table|json]
//	troupe members   [-admin HOST:PORT] [-name NAME -dir DIR] [-o table|json]
//	troupe actors    [-admin HOST:PORT] [-name NAME -dir DIR] [-type T] [-node N] [-limit N] [-o table|json]
//	troupe expel ID  -admin HOST:PORT -name NAME [-dir DIR]
//
//	troupe gen       -type T[=NAME],... [-pkg DIR] [-o FILE]
//
// Files live in one directory (-dir, default "."): ca.pem and ca-key.pem
// for the CA, NAME.pem and NAME-key.pem for a node; keys are written
// readable by their owner only, and nothing is overwritten without -force.
// `troupe node` prints "READY ADDR" on stdout once the node runs and
// "SERVING ADDR" once it is a member holding its lease (at once for a new
// node; a node restarted from -data waits for a quorum of its peers to be
// back), and on SIGINT or SIGTERM leaves the cluster gracefully (drain,
// then leave, within -drain) and exits 0.
//
// The commands that read a running cluster (ready, status, members,
// actors, expel) talk to a node's admin endpoint (troupe node -admin,
// Config.AdminAddr): plain HTTP to a loopback endpoint, or HTTPS with
// mutual TLS presenting DIR/NAME.pem with -name. Output is an aligned
// table, or JSON with -o json.
//
// `troupe gen` writes typed refs: for each actor type T of the Go package
// in -pkg (default "."), registered under NAME (default T), a file
// t_troupe.go (or -o) declaring TRef, whose methods mirror the callable
// methods of *T and return typed Futures, so a misspelled method or a wrong
// argument is a compile error; with NewTRef, RegisterT, SpawnT and LookupT.
// It fails, naming each one and why, if *T has an exported method that
// Register would refuse. Use it from a go:generate line:
//
//	//go:generate go run github.com/troupe-dev/troupe/cmd/troupe gen -type Counter
package main
