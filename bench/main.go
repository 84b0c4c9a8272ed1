package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"regexp"
	"sync"
	"syscall"
	"time"
)

// workerEnv, when set in the environment, turns the binary into a cluster
// worker (see worker.go) instead of the suite.
const workerEnv = "TROUPE_BENCH_WORKER"

func main() {
	if os.Getenv(workerEnv) != "" {
		os.Exit(workerMain())
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// options are the suite's flags.
type options struct {
	scenario *regexp.Regexp
	duration time.Duration
	quick    bool
	jsonOut  string
	compare  string
	list     bool
	verbose  bool
	profile  string // directory for CPU profiles of every process, "" for none
	actors   int    // actors of failover-at-scale, 0 for its default
	// FailTimeout of the cluster scenarios' nodes
	failTimeout time.Duration
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	pattern := fs.String("scenario", "", "run only the scenarios matching this regular expression")
	o := &options{}
	fs.DurationVar(&o.duration, "duration", 0, "measuring time per scenario (zero means 2s, or 300ms with -quick)")
	fs.BoolVar(&o.quick, "quick", false, "short runs and fewer trials (for CI: the whole suite in under 60s)")
	fs.StringVar(&o.jsonOut, "json", "", "write the results (with Go version, GOMAXPROCS, CPU model, commit) to this file")
	fs.StringVar(&o.compare, "compare", "", "compare the results with this earlier -json file")
	fs.BoolVar(&o.list, "list", false, "list the scenarios and exit")
	fs.BoolVar(&o.verbose, "v", false, "log the cluster nodes' warnings to stderr")
	fs.IntVar(&o.actors, "actors", 0, "actors spawned by failover-at-scale (zero means 1 M, or 20 k with -quick)")
	fs.DurationVar(&o.failTimeout, "fail-timeout", defaultFailTimeout, "FailTimeout of the cluster scenarios' nodes (the leader fails a node not heard for that long; LeaseTimeout is 3/8 of it)")
	fs.StringVar(&o.profile, "cpuprofile", "", "write a CPU profile of the suite's process (main.cpu.pprof) and of each worker process (NAME.cpu.pprof) to this directory")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("bench: unexpected arguments %q", fs.Args())
	}
	re, err := regexp.Compile(*pattern)
	if err != nil {
		return nil, fmt.Errorf("bench: -scenario: %w", err)
	}
	o.scenario = re
	if o.duration == 0 {
		o.duration = 2 * time.Second
		if o.quick {
			o.duration = 300 * time.Millisecond
		}
	}
	if o.actors < 0 {
		return nil, errors.New("bench: -actors must not be negative")
	}
	if o.failTimeout <= 2*heartbeatTimeout {
		return nil, fmt.Errorf("bench: -fail-timeout must be above %v (twice HeartbeatTimeout)", 2*heartbeatTimeout)
	}
	if o.duration < 0 {
		return nil, errors.New("bench: -duration must be positive")
	}
	return o, nil
}

// run is the whole suite; it returns the exit status: 0 when every selected
// scenario ran, 1 when one failed, 2 on bad flags or files.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, err)
		return 2
	}
	var selected []scenario
	for _, s := range scenarios {
		if o.scenario.MatchString(s.name) {
			selected = append(selected, s)
		}
	}
	if o.list {
		for _, s := range scenarios {
			fmt.Fprintf(stdout, "%-24s %s\n", s.name, s.about)
		}
		return 0
	}
	if len(selected) == 0 {
		fmt.Fprintf(stderr, "bench: no scenario matches %q (see -list)\n", o.scenario)
		return 2
	}
	var old *Report
	if o.compare != "" {
		if old, err = readReport(o.compare); err != nil {
			fmt.Fprintln(stderr, err)
			return 2
		}
	}

	if o.profile != "" {
		stop, err := startProfile(o.profile, "main")
		if err != nil {
			fmt.Fprintln(stderr, "bench:", err)
			return 2
		}
		defer stop()
	}
	rep := newReport(o.quick, o.duration)
	e := newEnv(o, stderr)
	failed := 0
	for i, s := range selected {
		if ctx.Err() != nil {
			break
		}
		e.logf("[%d/%d] %s: %s", i+1, len(selected), s.name, s.about)
		start := time.Now()
		res := runOne(ctx, e, s)
		if res.Error != "" {
			failed++
			e.logf("[%d/%d] %s: FAILED after %s: %s", i+1, len(selected), s.name, time.Since(start).Round(time.Millisecond), res.Error)
		} else {
			e.logf("[%d/%d] %s: done in %s", i+1, len(selected), s.name, time.Since(start).Round(time.Millisecond))
		}
		rep.Results = append(rep.Results, res)
	}
	e.close()
	rep.LoadEnd = loadAvg()
	if ctx.Err() != nil {
		fmt.Fprintln(stderr, "bench: interrupted")
		failed++
	}

	rep.printHeader(stdout)
	printTable(stdout, rep.Results)
	if old != nil {
		printComparison(stdout, o.compare, compare(old, rep))
	}
	if o.jsonOut != "" {
		if err := rep.writeJSON(o.jsonOut); err != nil {
			fmt.Fprintln(stderr, "bench:", err)
			return 2
		}
	}
	if failed > 0 {
		return 1
	}
	return 0
}

// runOne runs one scenario with a progress ticker on stderr and a hard
// time bound, and turns its error into the result.
func runOne(ctx context.Context, e *env, s scenario) Result {
	ctx, cancel := context.WithTimeout(ctx, e.bound()+s.extra)
	defer cancel()
	var wg sync.WaitGroup
	done := make(chan struct{})
	wg.Go(func() {
		t := time.NewTicker(2 * time.Second)
		defer t.Stop()
		start := time.Now()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				e.logf("      %s running, %s", s.name, time.Since(start).Round(time.Second))
			}
		}
	})
	res, err := s.run(ctx, e)
	close(done)
	wg.Wait()
	if res == nil {
		res = &Result{}
	}
	res.Scenario = s.name
	if err != nil {
		res.Error = err.Error()
	}
	return *res
}

// scenario is one entry of the suite.
type scenario struct {
	name  string
	about string
	run   func(ctx context.Context, e *env) (*Result, error)
	extra time.Duration // added to its time bound (env.bound)
}

// scenarios is the suite, in the order it runs. The cluster scenarios
// share one multi-process cluster, started by the first one that needs it;
// failover runs after the others because it leaves dead members behind;
// leader-kill and failover-at-scale start clusters of their own.
var scenarios = []scenario{
	{"local-tell/1", "Tell from 1 sender to 1 actor (actor engine)", localTell(1), 0},
	{"local-tell/100", "Tell round-robin from GOMAXPROCS senders to 100 actors", localTell(100), 0},
	{"local-ask/1", "Ask round trips, 1 caller, 1 actor", localAsk(1), 0},
	{"local-ask/64", "Ask round trips, 64 callers, 1 actor", localAsk(64), 0},
	{"local-spawn", "spawn rate and heap bytes per idle actor", localSpawn, 0},
	{"remote-call/1", "Call round trips between 2 nodes in 2 processes over QUIC, 1 in flight", remoteCall(1), 0},
	{"remote-call/64", "Call round trips between 2 nodes in 2 processes over QUIC, 64 in flight", remoteCall(64), 0},
	{"remote-tell", "one-way Tell between 2 nodes in 2 processes over QUIC", remoteTell, 0},
	{"fanout", "one caller, 10k Calls over 3 nodes in 3 processes, WaitAll", fanout, 0},
	{"pool-map", "Map of 100k items (10k with -quick) over a pool of one worker per node, 3 processes", poolMap, 0},
	{"registered-memory", "heap per idle registered actor on its host process", registeredMemory, 0},
	{"registered-spawn/mem", "registered spawns, 3 nodes, in-memory Raft", registeredSpawn(false), 0},
	{"registered-spawn/disk", "registered spawns, 3 nodes, on-disk Raft (bbolt)", registeredSpawn(true), 0},
	{"registry-lookup", "Lookup of named actors from a non-leader replica", registryLookup, 0},
	{"failover", "kill -9 of the process hosting an actor until it answers elsewhere", failover, 0},
	{"leader-kill", "kill -9 of the Raft leader's process under Call load between two other nodes", leaderKill, 0},
	{"failover-at-scale", "1 M actors over 3 host processes, kill -9 of one under Call load to the others", failoverAtScale(false), 5 * time.Minute},
	{"failover-at-scale/leader", "failover-at-scale, the host killed is the Raft leader", failoverAtScale(true), 5 * time.Minute},
	{"restart-at-scale", "1 M actors over 3 host processes with DataDirs, kill -9 of one and its restart at once", restartAtScale, 10 * time.Minute},
}
