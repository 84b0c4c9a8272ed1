package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/troupe-dev/troupe"
	"github.com/troupe-dev/troupe/transport"
)

// childEnv, when set, makes the binary run one child node (see child).
const childEnv = "TROUPE_CLUSTER_CHILD"

// clientEnv makes the process the client "app": see clientChild.
const clientEnv = "TROUPE_CLUSTER_CLIENT"

// mapInputs is the size of the pool map that runs across the kill.
const mapInputs = 3000

func main() {
	if os.Getenv(clientEnv) != "" {
		os.Exit(clientChild())
	}
	if os.Getenv(childEnv) != "" {
		os.Exit(child())
	}
	actors := flag.Int("actors", 6, "registered actors to spawn")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := run(ctx, os.Stdout, *actors); err != nil {
		log.Fatal(err)
	}
}

// Counter is the actor type every node registers.
type Counter struct {
	node  string
	total int
}

// Add adds n and returns the new total and the node that holds it.
func (c *Counter) Add(n int) (Reply, error) {
	c.total += n
	return Reply{Total: c.total, Node: c.node}, nil
}

// Reply is Counter.Add's result.
type Reply struct {
	Total int
	Node  string
}

func register(n *troupe.Node) error {
	id := n.ID()
	return troupe.Register(n, "Counter", func() *Counter { return &Counter{node: id} })
}

// config is the configuration of node name, with its files in dir.
func config(dir, name string, join []string) troupe.Config {
	return troupe.Config{
		Name: name,
		Addr: "127.0.0.1:0",
		Join: join,
		TLS: troupe.TLS{
			CAFile:   filepath.Join(dir, "ca.pem"),
			CertFile: filepath.Join(dir, name+".pem"),
			KeyFile:  filepath.Join(dir, name+"-key.pem"),
		},
		FailTimeout: time.Second,
	}
}

// child runs one node: it joins, registers Counter, prints "READY addr" and
// serves until its stdin closes or it is signalled, then closes.
func child() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	name, dir, join := os.Getenv(childEnv), os.Getenv("TROUPE_CLUSTER_DIR"), os.Getenv("TROUPE_CLUSTER_JOIN")
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	n, err := troupe.Start(sctx, config(dir, name, []string{join}))
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		return 1
	}
	if err := register(n); err != nil {
		n.Close()
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		return 1
	}
	fmt.Printf("READY %s\n", n.Addr())
	eof := make(chan struct{})
	go func() { // ends with the process
		io.Copy(io.Discard, os.Stdin)
		close(eof)
	}()
	select {
	case <-eof:
	case <-ctx.Done():
	}
	// Close, not Stop: after the failover the cluster has lost a voter,
	// and a graceful leave of a second one could not commit.
	n.Close()
	return 0
}

// clientChild runs the client "app" (a client certificate: it may call
// and spawn, never join): it finds counter-0 and calls it, calls a virtual
// actor and spawns an actor of its own, prints one "RESULT" line for each
// and exits.
func clientChild() int {
	dir, join := os.Getenv("TROUPE_CLUSTER_DIR"), os.Getenv("TROUPE_CLUSTER_JOIN")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := config(dir, "app", []string{join})
	cfg.Client = true
	n, err := troupe.Start(ctx, cfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "app: %v\n", err)
		return 1
	}
	defer n.Close()
	fail := func(err error) int {
		fmt.Fprintf(os.Stderr, "app: %v\n", err)
		return 1
	}
	ref, err := n.Lookup(ctx, "counter-0")
	if err != nil {
		return fail(err)
	}
	r, err := troupe.Call[Reply](ctx, ref, "Add", 1).Await(ctx)
	if err != nil {
		return fail(err)
	}
	fmt.Printf("RESULT counter-0.Add(1) = %d, answered by %s\n", r.Total, r.Node)
	if r, err = troupe.Call[Reply](ctx, n.Virtual("Counter", "bob"), "Add", 2).Await(ctx); err != nil {
		return fail(err)
	}
	fmt.Printf("RESULT virtual Counter/bob.Add(2) = %d, answered by %s\n", r.Total, r.Node)
	own, err := n.Spawn(ctx, "Counter")
	if err != nil {
		return fail(err)
	}
	if r, err = troupe.Call[Reply](ctx, own, "Add", 3).Await(ctx); err != nil {
		return fail(err)
	}
	fmt.Printf("RESULT its own Counter %s on %s: Add(3) = %d (owned: it ends with the client)\n", own.ID, r.Node, r.Total)
	fmt.Printf("OWN %s\n", own.ID)
	fmt.Printf("RESULT members seen by the client: %v (it is none of them)\n", n.Members())
	return 0
}

// runClient runs the client "app" as a child process and relays its
// results.
func runClient(ctx context.Context, dir, join string, say func(string, ...any)) (owned string, err error) {
	exe, err := os.Executable()
	if err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, exe)
	cmd.Env = append(os.Environ(), clientEnv+"=1", "TROUPE_CLUSTER_DIR="+dir, "TROUPE_CLUSTER_JOIN="+join)
	cmd.SysProcAttr = procAttr()
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	for _, line := range strings.Split(string(out), "\n") {
		if r, ok := strings.CutPrefix(line, "RESULT "); ok {
			say("app: %s", r)
		}
		if id, ok := strings.CutPrefix(line, "OWN "); ok {
			owned = id
		}
	}
	if err != nil {
		return "", fmt.Errorf("client app: %w", err)
	}
	say("app (pid %d) exited", cmd.Process.Pid)
	return owned, nil
}

// proc is a child process.
type proc struct {
	name  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	done  chan struct{}
}

// procs owns the children: it reaps them and ends them on close.
type procs struct {
	wg   sync.WaitGroup
	list []*proc
}

func (ps *procs) start(ctx context.Context, dir, name, join string) (*proc, string, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, "", err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), childEnv+"="+name, "TROUPE_CLUSTER_DIR="+dir, "TROUPE_CLUSTER_JOIN="+join)
	cmd.SysProcAttr = procAttr()
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, "", err
	}
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, "", err
	}
	if err := cmd.Start(); err != nil {
		return nil, "", err
	}
	p := &proc{name: name, cmd: cmd, stdin: in, done: make(chan struct{})}
	ps.list = append(ps.list, p)
	ready := make(chan string, 1)
	ps.wg.Go(func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if addr, ok := strings.CutPrefix(sc.Text(), "READY "); ok {
				ready <- addr
			}
		}
		cmd.Wait()
		close(p.done)
	})
	select {
	case addr := <-ready:
		return p, addr, nil
	case <-p.done:
		return nil, "", fmt.Errorf("%s exited: %v", name, cmd.ProcessState)
	case <-ctx.Done():
		return nil, "", fmt.Errorf("%s not ready: %w", name, ctx.Err())
	}
}

// close asks every child to leave (stdin closed), kills those still there
// after 10s, and reaps them all.
func (ps *procs) close() {
	for _, p := range ps.list {
		p.stdin.Close()
	}
	for _, p := range ps.list {
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			p.cmd.Process.Kill()
		}
	}
	ps.wg.Wait()
}

func run(ctx context.Context, out io.Writer, actors int) error {
	start := time.Now()
	say := func(format string, args ...any) {
		fmt.Fprintf(out, "[%6.2fs] "+format+"\n", append([]any{time.Since(start).Seconds()}, args...)...)
	}

	say("== certificates: one cluster CA, one certificate per node")
	dir, err := os.MkdirTemp("", "troupe-cluster-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ca, err := transport.NewCA("troupe-example", 0)
	if err != nil {
		return err
	}
	if err := ca.WriteFiles(filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem")); err != nil {
		return err
	}
	for _, name := range []string{"n1", "n2", "n3"} {
		c := config(dir, name, nil).TLS
		if err := ca.IssueFiles(name, 0, c.CertFile, c.KeyFile); err != nil {
			return err
		}
	}
	app := config(dir, "app", nil).TLS
	if err := ca.IssueFilesWith("app", transport.IssueOptions{Client: true}, app.CertFile, app.KeyFile); err != nil {
		return err
	}
	say("wrote %s/{ca,n1,n2,n3}.pem and keys, and app.pem: a client certificate", dir)

	say("== membership: n1 in this process (pid %d) bootstraps, n2 and n3 join as child processes", os.Getpid())
	n1, err := troupe.Start(ctx, config(dir, "n1", nil))
	if err != nil {
		return err
	}
	defer n1.Close()
	if err := register(n1); err != nil {
		return err
	}
	var ps procs
	defer ps.close()
	children := map[string]*proc{}
	for _, name := range []string{"n2", "n3"} {
		p, addr, err := ps.start(ctx, dir, name, n1.Addr())
		if err != nil {
			return err
		}
		children[name] = p
		say("%s: pid %d, listening on %s, joined through n1 at %s", name, p.cmd.Process.Pid, addr, n1.Addr())
	}
	say("members seen by n1: %v, Raft leader: %s", n1.Members(), n1.Leader())

	say("== placements: %d registered Counters, placed on the least-loaded node", actors)
	names := make([]string, actors)
	for i := range names {
		names[i] = fmt.Sprintf("counter-%d", i)
		ref, err := n1.Spawn(ctx, "Counter", troupe.WithName(names[i]))
		if err != nil {
			return err
		}
		say("%s -> node %s, epoch %d", names[i], ref.Node, ref.Epoch)
	}
	for i, name := range names {
		ref, err := n1.Lookup(ctx, name)
		if err != nil {
			return err
		}
		r, err := troupe.Call[Reply](ctx, ref, "Add", 10*(i+1)).Await(ctx)
		if err != nil {
			return err
		}
		say("call %s.Add(%d) = %d, answered by %s", name, 10*(i+1), r.Total, r.Node)
	}

	say("== a client process: calls and spawns with a client certificate, without being a member")
	owned, err := runClient(ctx, dir, n1.Addr(), say)
	if err != nil {
		return err
	}
	say("members seen by n1 after the client: %v", n1.Members())
	// The release was applied before the client exited; n1's replica may
	// apply it a moment later.
	for deadline := time.Now().Add(5 * time.Second); ; {
		ref, err := n1.Lookup(ctx, owned)
		if errors.Is(err, troupe.ErrNotFound) {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the client's own Counter %s outlived it: %v, %v", owned, ref, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	say("the client's own Counter %s stopped with it (a client owns what it spawns unless Detached)", owned)

	say("== a virtual actor: no spawn, placed by its first call")
	alice := n1.Virtual("Counter", "alice")
	va, err := troupe.Call[Reply](ctx, alice, "Add", 5).Await(ctx)
	if err != nil {
		return err
	}
	say("virtual Counter/alice.Add(5) = %d, answered by %s", va.Total, va.Node)

	say("== a pool of Counters (one per node) maps Add over %d inputs; n3 is SIGKILLed mid-map", mapInputs)
	pool, err := n1.NewPool(ctx, "Counter")
	if err != nil {
		return err
	}
	inputs := make([]int, mapInputs)
	for i := range inputs {
		inputs[i] = 1
	}
	type mapped struct {
		replies []Reply
		err     error
	}
	mapDone := make(chan mapped, 1)
	go func() {
		// Add is not idempotent in general; here a repeated Add only
		// moves a count, so the map may retry what may have run.
		r, err := troupe.Map[Reply](ctx, pool, "Add", inputs, troupe.MapIdempotent())
		mapDone <- mapped{r, err}
	}()

	say("== failover: SIGKILL to n3 (pid %d)", children["n3"].cmd.Process.Pid)
	var onN3 []troupe.Ref
	for _, name := range names {
		if ref, err := n1.Lookup(ctx, name); err == nil && ref.Node == "n3" {
			onN3 = append(onN3, ref)
		}
	}
	select { // let the map get going: the kill lands with calls in flight
	case <-time.After(50 * time.Millisecond):
	case <-ctx.Done():
		return ctx.Err()
	}
	killed := time.Now()
	if err := children["n3"].cmd.Process.Kill(); err != nil {
		return err
	}
	<-children["n3"].done
	m := <-mapDone
	if m.err != nil {
		return fmt.Errorf("map across the kill: %w", m.err)
	}
	perNode := map[string]int{}
	for _, r := range m.replies {
		perNode[r.Node]++
	}
	say("map: %d of %d inputs answered, by node %v, %s after the kill", len(m.replies), len(inputs), perNode, time.Since(killed).Round(time.Millisecond))
	if va, err = callUntil(ctx, alice.With(troupe.Idempotent()), "n3"); err != nil {
		return fmt.Errorf("virtual actor after the kill: %w", err)
	}
	say("virtual Counter/alice answers from %s, total %d", va.Node, va.Total)
	for _, ref := range onN3 {
		name := ref.ID
		r, err := callUntil(ctx, ref.With(troupe.Idempotent()), "n3")
		if err != nil {
			return fmt.Errorf("%s after the kill: %w", name, err)
		}
		now, err := n1.Lookup(ctx, name)
		if err != nil {
			return err
		}
		say("%s answers again %s after the kill: node %s, epoch %d -> %d, total %d (a fresh instance: its state was on n3)",
			name, time.Since(killed).Round(time.Millisecond), r.Node, ref.Epoch, now.Epoch, r.Total)
	}
	say("members seen by n1: %v, Raft leader: %s", n1.Members(), n1.Leader())
	for _, name := range names {
		ref, err := n1.Lookup(ctx, name)
		if err != nil {
			return err
		}
		say("%s -> node %s, epoch %d", name, ref.Node, ref.Epoch)
	}
	say("== done: n2 and n1 close")
	return nil
}

// callUntil calls Add(1) on ref until it answers from a node other than
// dead, each try bounded by 2s, all by 30s.
func callUntil(ctx context.Context, ref troupe.Ref, dead string) (Reply, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var last error = errors.New("no answer")
	for ctx.Err() == nil {
		actx, acancel := context.WithTimeout(ctx, 2*time.Second)
		r, err := troupe.Call[Reply](actx, ref, "Add", 1).Await(actx)
		acancel()
		if err == nil && r.Node != dead {
			return r, nil
		}
		if err != nil {
			last = err
			select { // a fast failure (unavailable): do not spin
			case <-time.After(20 * time.Millisecond):
			case <-ctx.Done():
			}
		}
	}
	return Reply{}, last
}
