package troupe

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/transport"
)

// ownerChildEnv makes the test binary run as the client process of
// TestKilledClientProcess (see TestMain); its value is the certificates'
// directory, TROUPE_TEST_JOIN the member to join.
const ownerChildEnv = "TROUPE_TEST_OWNER_CHILD"

func tlsIn(dir, name string) TLS {
	return TLS{CAFile: filepath.Join(dir, "ca.pem"), CertFile: filepath.Join(dir, name+".pem"), KeyFile: filepath.Join(dir, name+"-key.pem")}
}

// ownerChild is the client process: it spawns an owned and a detached
// Counter, prints their ids and waits until it is killed.
func ownerChild() int {
	dir := os.Getenv(ownerChildEnv)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := Start(ctx, Config{Name: "app", Client: true, Addr: "127.0.0.1:0", Join: []string{os.Getenv("TROUPE_TEST_JOIN")}, TLS: tlsIn(dir, "app")})
	if err != nil {
		fmt.Fprintln(os.Stderr, "client:", err)
		return 1
	}
	owned, err := n.Spawn(ctx, "Counter")
	if err != nil {
		fmt.Fprintln(os.Stderr, "client:", err)
		return 1
	}
	detached, err := n.Spawn(ctx, "Counter", Detached())
	if err != nil {
		fmt.Fprintln(os.Stderr, "client:", err)
		return 1
	}
	fmt.Printf("OWNED %s\nDETACHED %s\n", owned.ID, detached.ID)
	_, _ = io.Copy(io.Discard, os.Stdin) // until killed
	return 0
}

// TestKilledClientProcess: a client OS process, over QUIC with mutual
// TLS, is killed with SIGKILL after spawning an owned and a detached
// actor; the registry stops the owned one once the leader has not heard
// from it for ClientTimeout, and the detached one keeps answering.
func TestKilledClientProcess(t *testing.T) {
	dir := t.TempDir()
	ca, err := transport.NewDevCA()
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.WriteFiles(filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem")); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"m1", "m2", "m3"} {
		tl := tlsIn(dir, name)
		if err := ca.IssueFiles(name, 0, tl.CertFile, tl.KeyFile); err != nil {
			t.Fatal(err)
		}
	}
	app := tlsIn(dir, "app")
	if err := ca.IssueFilesWith("app", transport.IssueOptions{Client: true}, app.CertFile, app.KeyFile); err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t)
	var nodes []*Node
	for i, name := range []string{"m1", "m2", "m3"} {
		cfg := fastTimeouts
		cfg.Name, cfg.Addr, cfg.TLS, cfg.ClientTimeout = name, "127.0.0.1:0", tlsIn(dir, name), 5*time.Second
		if i > 0 {
			cfg.Join = []string{nodes[0].Addr()}
		}
		nd, err := Start(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nd.Close() })
		if err := Register(nd, "Counter", func() *Counter { return &Counter{node: name} }); err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, nd)
	}

	cmd := exec.Command(os.Args[0], "-test.run", "^$")
	cmd.Env = append(os.Environ(), ownerChildEnv+"="+dir, "TROUPE_TEST_JOIN="+nodes[0].Addr())
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	ids := map[string]string{}
	sc := bufio.NewScanner(out)
	for len(ids) < 2 && sc.Scan() {
		if kind, id, ok := strings.Cut(sc.Text(), " "); ok && (kind == "OWNED" || kind == "DETACHED") {
			ids[kind] = id
		}
	}
	if len(ids) < 2 {
		t.Fatalf("the client process printed %v", ids)
	}
	if err := cmd.Process.Kill(); err != nil { // SIGKILL: no release on the way out
		t.Fatal(err)
	}
	_ = cmd.Wait()
	waitState(t, ctx, nodes[1], ids["OWNED"], placement.Stopped)
	p, _ := nodes[1].reg.Lookup(ids["OWNED"])
	if !strings.Contains(p.Reason, "silent") {
		t.Fatalf("owned actor stopped for %q, want the client's silence", p.Reason)
	}
	ref := must[Ref](t)(nodes[1].Lookup(ctx, ids["DETACHED"]))
	if _, err := Call[int](ctx, ref, "Add", 1).Await(ctx); err != nil {
		t.Fatalf("the detached actor after its client was killed: %v", err)
	}
}
