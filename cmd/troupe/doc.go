// Command troupe operates a troupe cluster from the shell: it makes the
// cluster's certificate authority and the node certificates, and runs
// dedicated registry members that host no actors (the way to run three or
// five stable voters, as Consul servers or Dapr placement do).
//
//	troupe ca init   [-dir DIR] [-name NAME] [-valid DURATION] [-force]
//	troupe cert issue NAME [-dir DIR] [-ip IP,...] [-dns NAME,...] [-valid DURATION] [-force]
//	troupe node      -name NAME [-addr HOST:PORT] [-join ADDR,...] [-dir DIR] [-data DIR] [-drain DURATION] [-log LEVEL]
//
// Files live in one directory (-dir, default "."): ca.pem and ca-key.pem
// for the CA, NAME.pem and NAME-key.pem for a node; keys are written
// readable by their owner only, and nothing is overwritten without -force.
// `troupe node` prints "READY ADDR" on stdout once the node runs, and on
// SIGINT or SIGTERM leaves the cluster gracefully (drain, then leave, within
// -drain) and exits 0.
//
// The commands that read a running cluster (status, members, actors,
// expel) need the admin endpoint, which is not built yet.
package main
