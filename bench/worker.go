package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/troupe-dev/troupe"
	"github.com/troupe-dev/troupe/internal/quicecho"
	"github.com/troupe-dev/troupe/transport"
)

// Bench is the actor type of the cluster scenarios, registered on every
// node of the cluster.
type Bench struct {
	node string
	n    int64
}

// Echo returns its argument.
func (b *Bench) Echo(p []byte) []byte { return p }

// Inc counts a one-way message.
func (b *Bench) Inc(_ []byte) { b.n++ }

// Count returns how many Inc the instance has handled.
func (b *Bench) Count() int64 { return b.n }

// Where returns the id of the node hosting the instance.
func (b *Bench) Where() string { return b.node }

// Item handles one item of a pool map: it returns the node that ran it.
func (b *Bench) Item(_ []byte) string { return b.node }

// Heap collects garbage and returns the live heap of the hosting process.
func (b *Bench) Heap() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

func register(n *troupe.Node) error {
	id := n.ID()
	return troupe.Register(n, "Bench", func() *Bench { return &Bench{node: id} })
}

// Timeouts of every node of the cluster scenarios: the defaults, written
// out so the failover and leader-kill figures can be read against them.
// HeartbeatTimeout is also Raft's election timeout. -fail-timeout sets
// FailTimeout (the suite's tests raise it, so that a host restarted under
// their load is back before it). Mailboxes are the default
// (Config.MailboxSize zero: 1024 calls per actor).
const (
	heartbeatTimeout   = 200 * time.Millisecond
	defaultFailTimeout = 800 * time.Millisecond
)

// tlsFiles are the PEM files of one node in the cluster's directory.
func tlsFiles(dir, name string) troupe.TLS {
	return troupe.TLS{
		CAFile:   filepath.Join(dir, "ca.pem"),
		CertFile: filepath.Join(dir, name+".pem"),
		KeyFile:  filepath.Join(dir, name+"-key.pem"),
	}
}

func nodeConfig(dir, name string, join []string, verbose bool, failTimeout time.Duration) troupe.Config {
	var logger *slog.Logger
	if verbose {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	return troupe.Config{
		Logger:           logger,
		Name:             name,
		Addr:             "127.0.0.1:0",
		Join:             join,
		TLS:              tlsFiles(dir, name),
		HeartbeatTimeout: heartbeatTimeout,
		FailTimeout:      failTimeout,
	}
}

// Environment of a worker process.
const (
	envName = "TROUPE_BENCH_NAME" // node id
	envJoin = "TROUPE_BENCH_JOIN" // address of a member; empty: bootstrap a new cluster
	envDir  = "TROUPE_BENCH_DIR"  // directory with ca.pem, NAME.pem, NAME-key.pem
	envLog  = "TROUPE_BENCH_LOG"  // "1": log warnings to stderr
	envProf = "TROUPE_BENCH_PROF" // directory for this worker's CPU profile; empty: none
	envData = "TROUPE_BENCH_DATA" // the node's DataDir; empty: in-memory Raft stores
	envAddr = "TROUPE_BENCH_ADDR" // the node's address; empty: 127.0.0.1:0
	envFail = "TROUPE_BENCH_FAIL" // FailTimeout (time.ParseDuration); empty: defaultFailTimeout
)

// workerMain runs one node of the cluster scenarios in this process: it
// joins, registers Bench, prints "READY addr" on stdout and serves until its
// stdin closes (the suite ended it or died) or it gets SIGINT/SIGTERM.
func workerMain() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	name, dir := os.Getenv(envName), os.Getenv(envDir)
	join, joinSet := os.LookupEnv(envJoin)
	if name == "" || !joinSet || dir == "" {
		fmt.Fprintln(os.Stderr, "bench worker: missing environment")
		return 2
	}
	var members []string
	if join != "" {
		members = []string{join}
	}
	if dir := os.Getenv(envProf); dir != "" {
		stopProf, err := startProfile(dir, name)
		if err != nil {
			fmt.Fprintf(os.Stderr, "bench worker %s: %v\n", name, err)
			return 1
		}
		defer stopProf()
	}
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	failTimeout := defaultFailTimeout
	if v := os.Getenv(envFail); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			cancel()
			fmt.Fprintf(os.Stderr, "bench worker %s: %s: %v\n", name, envFail, err)
			return 2
		}
		failTimeout = d
	}
	cfg := nodeConfig(dir, name, members, os.Getenv(envLog) == "1", failTimeout)
	cfg.DataDir = os.Getenv(envData)
	if addr := os.Getenv(envAddr); addr != "" {
		cfg.Addr = addr
	}
	n, err := troupe.Start(sctx, cfg)
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench worker %s: %v\n", name, err)
		return 1
	}
	defer n.Close()
	if err := register(n); err != nil {
		fmt.Fprintf(os.Stderr, "bench worker %s: %v\n", name, err)
		return 1
	}
	// The bare quic-go echo beside the node: the floor the remote
	// scenarios are compared with, across the same two processes.
	f := tlsFiles(dir, name)
	ident, err := transport.LoadIdentity(f.CAFile, f.CertFile, f.KeyFile)
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench worker %s: %v\n", name, err)
		return 1
	}
	echo, err := quicecho.Listen("127.0.0.1:0", ident)
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench worker %s: echo: %v\n", name, err)
		return 1
	}
	defer echo.Close()
	fmt.Printf("READY %s %s\n", n.Addr(), echo.Addr())
	eof := make(chan struct{})
	// This goroutine blocks on stdin until the process ends; os.Exit is
	// its owner.
	go func() {
		io.Copy(io.Discard, os.Stdin)
		close(eof)
	}()
	select {
	case <-eof:
	case <-ctx.Done():
	}
	return 0
}

// worker is a worker process as the suite sees it.
type worker struct {
	name  string
	addr  string
	echo  string // address of its bare quic-go echo server
	cmd   *exec.Cmd
	stdin io.WriteCloser
	ready bool          // it printed READY (set by startWorker)
	done  chan struct{} // closed once the process was reaped
}

// cluster is the multi-process cluster of the cluster scenarios: a node in
// this process ("main") and worker processes, all sharing one CA whose files
// live in a temporary directory.
type cluster struct {
	e    *env
	dir  string
	ca   *transport.CA
	main *troupe.Node

	mu      sync.Mutex
	workers []*worker
	wg      sync.WaitGroup
}

// startCluster starts main and the workers w1 and w2: three voters.
func startCluster(ctx context.Context, e *env) (*cluster, error) {
	c, err := newCluster(e)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			c.close()
		}
	}()
	dir := c.dir
	if err := c.issue("main"); err != nil {
		return nil, err
	}
	e.logf("      cluster: starting node main in this process")
	if c.main, err = troupe.Start(ctx, nodeConfig(dir, "main", nil, e.o.verbose, e.o.failTimeout)); err != nil {
		return nil, fmt.Errorf("start main: %w", err)
	}
	if err := register(c.main); err != nil {
		return nil, err
	}
	for _, name := range []string{"w1", "w2"} {
		if _, err := c.startWorker(ctx, name); err != nil {
			return nil, err
		}
	}
	ok = true
	return c, nil
}

// newCluster makes the directory and the CA of a cluster with no node yet.
func newCluster(e *env) (*cluster, error) {
	dir, err := os.MkdirTemp("", "troupe-bench-")
	if err != nil {
		return nil, err
	}
	c := &cluster{e: e, dir: dir}
	if c.ca, err = transport.NewCA("troupe-bench", 0); err == nil {
		err = c.ca.WriteFiles(filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem"))
	}
	if err != nil {
		c.close()
		return nil, err
	}
	return c, nil
}

// issue writes name's certificate and key, unless they exist: a node
// started again (restart-at-scale) keeps its identity, as a restarted
// production node keeps its key files.
func (c *cluster) issue(name string) error {
	f := tlsFiles(c.dir, name)
	if _, err := os.Stat(f.KeyFile); err == nil {
		return nil
	}
	return c.ca.IssueFiles(name, 0, f.CertFile, f.KeyFile)
}

// startWorker starts a worker process that joins through main, and waits
// until it has registered Bench.
func (c *cluster) startWorker(ctx context.Context, name string) (*worker, error) {
	return c.startWorkerJoin(ctx, name, c.main.Addr())
}

// startWorkerJoin starts a worker process that joins through the member at
// join (or bootstraps a new cluster when join is empty), and waits until it
// has registered Bench.
func (c *cluster) startWorkerJoin(ctx context.Context, name, join string) (*worker, error) {
	return c.startWorkerEnv(ctx, name, join)
}

// startWorkerEnv is startWorkerJoin with more of the worker's environment
// (envData, envAddr).
func (c *cluster) startWorkerEnv(ctx context.Context, name, join string, env ...string) (*worker, error) {
	if err := c.issue(name); err != nil {
		return nil, err
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), workerEnv+"=1", envName+"="+name, envJoin+"="+join, envDir+"="+c.dir, envFail+"="+c.e.o.failTimeout.String())
	cmd.Env = append(cmd.Env, env...)
	if c.e.o.verbose {
		cmd.Env = append(cmd.Env, envLog+"=1")
	}
	if c.e.o.profile != "" {
		cmd.Env = append(cmd.Env, envProf+"="+c.e.o.profile)
	}
	cmd.SysProcAttr = procAttr()
	cmd.Stderr = prefixWriter{c.e, name}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	c.e.logf("      cluster: starting worker process %s", name)
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	w := &worker{name: name, cmd: cmd, stdin: stdin, done: make(chan struct{})}
	ready := make(chan string, 1)
	c.mu.Lock()
	c.workers = append(c.workers, w)
	c.mu.Unlock()
	c.wg.Go(func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if addr, ok := strings.CutPrefix(sc.Text(), "READY "); ok {
				select {
				case ready <- addr:
				default:
				}
			}
		}
		cmd.Wait()
		close(w.done)
	})
	select {
	case addrs := <-ready:
		w.addr, w.echo, _ = strings.Cut(addrs, " ")
		w.ready = true
		return w, nil
	case <-w.done:
		return nil, fmt.Errorf("worker %s exited before it was ready: %v", name, cmd.ProcessState)
	case <-ctx.Done():
		return nil, fmt.Errorf("worker %s not ready: %w", name, ctx.Err())
	}
}

// kill sends SIGKILL to w and waits until it is reaped.
func (c *cluster) kill(w *worker) error {
	if err := w.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	<-w.done
	return nil
}

// close ends every worker (stdin closed, then SIGKILL after 5s; at once
// for a worker still starting, which does not read stdin yet), closes main
// and removes the directory.
func (c *cluster) close() {
	c.mu.Lock()
	ws := c.workers
	c.workers = nil
	c.mu.Unlock()
	for _, w := range ws {
		w.stdin.Close()
		if !w.ready {
			w.cmd.Process.Kill()
		}
	}
	for _, w := range ws {
		select {
		case <-w.done:
		case <-time.After(5 * time.Second):
			c.kill(w)
		}
	}
	c.wg.Wait()
	if c.main != nil {
		c.main.Close()
	}
	os.RemoveAll(c.dir)
}

// prefixWriter copies a worker's stderr to the progress output, line by
// line, prefixed with the worker's name.
type prefixWriter struct {
	e    *env
	name string
}

func (p prefixWriter) Write(b []byte) (int, error) {
	for line := range strings.Lines(string(b)) {
		p.e.logf("      [%s] %s", p.name, strings.TrimRight(line, "\n"))
	}
	return len(b), nil
}

// startProfile writes a CPU profile of this process to dir/NAME.cpu.pprof
// until the returned function is called.
func startProfile(dir, name string) (func(), error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.Create(filepath.Join(dir, name+".cpu.pprof"))
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}
