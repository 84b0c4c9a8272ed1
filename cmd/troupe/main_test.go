package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/troupe-dev/troupe/transport"
)

// TestMain runs the tests, or, when the environment says so, the troupe
// command itself: the process tests start this test binary as `troupe`.
func TestMain(m *testing.M) {
	if os.Getenv(asCommand) == "1" {
		main()
		return
	}
	goleak.VerifyTestMain(m)
}

func runCmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestCAAndCert(t *testing.T) {
	dir := t.TempDir()
	if code, _, stderr := runCmd(t, "ca", "init", "-dir", dir, "-name", "test CA"); code != 0 {
		t.Fatalf("ca init: %d %s", code, stderr)
	}
	if code, _, stderr := runCmd(t, "ca", "init", "-dir", dir); code != 1 || !strings.Contains(stderr, "exists") {
		t.Fatalf("second ca init: %d %q, want a refusal to overwrite", code, stderr)
	}
	code, stdout, stderr := runCmd(t, "cert", "issue", "n1", "-dir", dir, "-ip", "127.0.0.1,10.0.0.7", "-dns", "n1.local", "-valid", "48h")
	if code != 0 {
		t.Fatalf("cert issue: %d %s", code, stderr)
	}
	if !strings.Contains(stdout, "n1.pem") {
		t.Fatalf("cert issue said %q", stdout)
	}
	id, err := transport.LoadIdentity(filepath.Join(dir, "ca.pem"), filepath.Join(dir, "n1.pem"), filepath.Join(dir, "n1-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	leaf := id.Cert.Leaf
	if id.NodeID != "n1" || len(leaf.IPAddresses) != 2 || !leaf.IPAddresses[1].Equal(net.ParseIP("10.0.0.7")) ||
		len(leaf.DNSNames) != 1 || leaf.DNSNames[0] != "n1.local" {
		t.Fatalf("certificate: id %q, IPs %v, DNS %v", id.NodeID, leaf.IPAddresses, leaf.DNSNames)
	}
	if left := time.Until(leaf.NotAfter); left > 48*time.Hour || left < 47*time.Hour {
		t.Fatalf("valid for %v more, want 48h", left)
	}
	if transport.IsClientCert(leaf) {
		t.Fatal("a node certificate is a client's")
	}
	if code, stdout, stderr := runCmd(t, "cert", "issue", "app", "-dir", dir, "-client"); code != 0 || !strings.Contains(stdout, "for client app") {
		t.Fatalf("cert issue -client: %d %q %q", code, stdout, stderr)
	}
	cid, err := transport.LoadIdentity(filepath.Join(dir, "ca.pem"), filepath.Join(dir, "app.pem"), filepath.Join(dir, "app-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if cid.NodeID != "app" || !transport.IsClientCert(cid.Cert.Leaf) {
		t.Fatalf("client certificate: id %q, client %v", cid.NodeID, transport.IsClientCert(cid.Cert.Leaf))
	}
}

func TestBadCommandLines(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{}, {"frobnicate"}, {"cert", "issue"}, {"cert", "issue", "n1", "-ip", "not-an-ip", "-dir", dir},
		{"node"}, {"node", "-name", "n1", "-log", "loud"}, {"ca", "init", "-bogus"},
	} {
		if code, _, stderr := runCmd(t, args...); code != 2 || stderr == "" {
			t.Errorf("%q: exit %d, stderr %q; want 2 and a message", args, code, stderr)
		}
	}
	if code, _, stderr := runCmd(t, "cert", "issue", "n1", "-dir", dir); code != 1 || !strings.Contains(stderr, "ca init") {
		t.Errorf("cert issue without a CA: %d %q", code, stderr)
	}
}

// lineWriter hands each line written to it to a channel.
type lineWriter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	lines chan string
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	sc := bufio.NewScanner(strings.NewReader(w.buf.String()))
	var rest string
	for sc.Scan() {
		rest = sc.Text()
		if strings.HasPrefix(rest, "READY ") {
			select {
			case w.lines <- rest:
			default:
			}
		}
	}
	w.buf.Reset()
	return len(p), nil
}

// Two `troupe node` members form a cluster and both stop cleanly on their
// signal (ctx).
func TestNodesFormAClusterAndStop(t *testing.T) {
	dir := t.TempDir()
	if code, _, stderr := runCmd(t, "ca", "init", "-dir", dir); code != 0 {
		t.Fatal(stderr)
	}
	for _, n := range []string{"v1", "v2", "v3"} {
		if code, _, stderr := runCmd(t, "cert", "issue", n, "-dir", dir); code != 0 {
			t.Fatal(stderr)
		}
	}
	start := func(ctx context.Context, args ...string) (<-chan int, string) {
		out := &lineWriter{lines: make(chan string, 1)}
		done := make(chan int, 1)
		go func() {
			done <- run(ctx, append([]string{"node", "-dir", dir, "-log", "error"}, args...), out, io.Discard)
		}()
		select {
		case line := <-out.lines:
			return done, strings.TrimPrefix(line, "READY ")

		case code := <-done:
			t.Fatalf("node %v exited with %d before it was ready", args, code)
		case <-time.After(30 * time.Second):
			t.Fatalf("node %v not ready within 30s", args)
		}
		return nil, ""
	}
	if code, _, stderr := runCmd(t, "cert", "issue", "ops", "-dir", dir); code != 0 {
		t.Fatal(stderr)
	}
	ctx1, stop1 := context.WithCancel(context.Background())
	defer stop1()
	done1, ready1 := start(ctx1, "-name", "v1", "-admin", "127.0.0.1:0")
	addr1, admin, ok := strings.Cut(ready1, " admin=")
	if !ok {
		t.Fatalf("READY line %q names no admin endpoint", ready1)
	}
	ctx2, stop2 := context.WithCancel(context.Background())
	defer stop2()
	done2, _ := start(ctx2, "-name", "v2", "-join", addr1)

	// The admin commands, as an operator holding a cluster certificate.
	code, stdout, stderr := runCmd(t, "members", "-admin", admin, "-dir", dir, "-name", "ops")
	if code != 0 || !strings.Contains(stdout, "v1") || !strings.Contains(stdout, "v2") || !strings.Contains(stdout, "alive") {
		t.Fatalf("members: %d\n%s%s", code, stdout, stderr)
	}
	code, stdout, stderr = runCmd(t, "status", "-admin", admin, "-dir", dir, "-name", "ops", "-o", "json")
	var st struct {
		Node    string                `json:"node"`
		Leader  string                `json:"leader"`
		Members []struct{ ID string } `json:"members"`
	}
	if err := json.Unmarshal([]byte(stdout), &st); code != 0 || err != nil || st.Node != "v1" || st.Leader == "" || len(st.Members) != 2 {
		t.Fatalf("status -o json: %d %v\n%s%s", code, err, stdout, stderr)
	}
	if code, stdout, stderr = runCmd(t, "actors", "-admin", admin, "-dir", dir, "-name", "ops"); code != 0 || !strings.HasPrefix(stdout, "ID") {
		t.Fatalf("actors: %d\n%s%s", code, stdout, stderr)
	}
	// expel: v3 joins, is expelled through v1's endpoint, and is listed so.
	ctx3, stop3 := context.WithCancel(context.Background())
	defer stop3()
	done3, _ := start(ctx3, "-name", "v3", "-join", addr1, "-drain", "1s")
	if code, stdout, stderr = runCmd(t, "expel", "v3", "-admin", admin, "-dir", dir, "-name", "ops"); code != 0 || !strings.Contains(stdout, "expelled v3") {
		t.Fatalf("expel: %d\n%s%s", code, stdout, stderr)
	}
	if code, stdout, stderr = runCmd(t, "members", "-admin", admin, "-dir", dir, "-name", "ops"); code != 0 || !strings.Contains(stdout, "expelled") {
		t.Fatalf("members after the expel: %d\n%s%s", code, stdout, stderr)
	}
	if code, _, stderr = runCmd(t, "expel", "v3", "-admin", admin); code != 2 {
		t.Fatalf("expel without a certificate: %d %q, want a usage error", code, stderr)
	}
	stop3()
	select {
	case <-done3: // an expelled node's stop may fail: its peers refuse it
	case <-time.After(30 * time.Second):
		t.Fatal("the expelled node did not stop within 30s")
	}
	// Without a certificate the TLS endpoint refuses; an unreachable one is
	// a clear error.
	if code, _, stderr = runCmd(t, "status", "-admin", admin); code != 1 || stderr == "" {
		t.Fatalf("status without a certificate: %d %q", code, stderr)
	}
	if code, _, stderr = runCmd(t, "status", "-admin", "127.0.0.1:1", "-dir", dir, "-name", "ops"); code != 1 || !strings.Contains(stderr, "unreachable") {
		t.Fatalf("status of nothing: %d %q", code, stderr)
	}
	stop2()
	stop1()
	for i, done := range []<-chan int{done2, done1} {
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("node %d exited with %d", i, code)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("node %d did not stop within 30s", i)
		}
	}
}
