package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// asCommand is the environment variable that makes the test binary run
// as the troupe command (see TestMain).
const asCommand = "TROUPE_TEST_AS_COMMAND"

// proc is a `troupe node` OS process: this test binary run as the command.
type proc struct {
	t      *testing.T
	name   string
	cmd    *exec.Cmd
	lines  chan string // stdout, line by line
	stderr *syncBuffer
	exited chan struct{}
	code   int
	addr   string // from its READY line
	admin  string
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startNode starts `troupe node -name name args...` and waits for its
// READY line (the node runs).
func startNode(t *testing.T, dir, name string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"node", "-dir", dir, "-name", name, "-admin", "127.0.0.1:0", "-log", "info"}, args...)...)
	cmd.Env = append(os.Environ(), asCommand+"=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &proc{t: t, name: name, cmd: cmd, lines: make(chan string, 16), stderr: &syncBuffer{}, exited: make(chan struct{})}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		close(p.lines)
	}()
	go func() {
		err := cmd.Wait()
		p.code = cmd.ProcessState.ExitCode()
		if err != nil && p.code == 0 {
			p.code = -1
		}
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("%s (%s) stderr:\n%s", name, p.addr, p.stderr.String())
		}
	})
	line := p.next("READY ")
	rest := strings.TrimPrefix(line, "READY ")
	var ok bool
	if p.addr, p.admin, ok = strings.Cut(rest, " admin="); !ok {
		t.Fatalf("%s: READY line %q names no admin endpoint", name, line)
	}
	return p
}

// next waits for the process's next stdout line starting with prefix.
func (p *proc) next(prefix string) string {
	p.t.Helper()
	timeout := time.After(60 * time.Second)
	for {
		select {
		case line, ok := <-p.lines:
			if !ok {
				<-p.exited
				p.t.Fatalf("%s exited (%d) before printing %q; stderr:\n%s", p.name, p.code, prefix, p.stderr.String())
			}
			if strings.HasPrefix(line, prefix) {
				return line
			}
		case <-timeout:
			p.t.Fatalf("%s printed no %q within 60s; stderr:\n%s", p.name, prefix, p.stderr.String())
		}
	}
}

// wait waits for the process to exit and returns its exit status.
func (p *proc) wait(within time.Duration) int {
	p.t.Helper()
	select {
	case <-p.exited:
		return p.code
	case <-time.After(within):
		p.t.Fatalf("%s did not exit within %v; stderr:\n%s", p.name, within, p.stderr.String())
		return -1
	}
}

func (p *proc) kill() {
	_ = p.cmd.Process.Kill()
	<-p.exited
}

// opsCmd runs a troupe subcommand in this process against admin as the
// operator "ops", and fails the test unless it exits 0.
func opsCmd(t *testing.T, dir, admin string, args ...string) string {
	t.Helper()
	args = append(args, "-admin", admin, "-dir", dir, "-name", "ops")
	code, stdout, stderr := runCmd(t, args...)
	if code != 0 {
		t.Fatalf("troupe %s: exit %d\n%s%s", strings.Join(args, " "), code, stdout, stderr)
	}
	return stdout
}

type memberJSON struct {
	ID     string `json:"id"`
	Addr   string `json:"addr"`
	State  string `json:"state"`
	Voter  bool   `json:"voter"`
	Leader bool   `json:"leader"`
}

func members(t *testing.T, dir, admin string) map[string]memberJSON {
	t.Helper()
	var ms []memberJSON
	out := opsCmd(t, dir, admin, "members", "-o", "json")
	if err := json.Unmarshal([]byte(out), &ms); err != nil {
		t.Fatalf("members -o json: %v\n%s", err, out)
	}
	m := make(map[string]memberJSON, len(ms))
	for _, x := range ms {
		m[x.ID] = x
	}
	return m
}

// TestThreeNodeProcesses runs a cluster as an operator does: three `troupe
// node` OS processes with DataDirs, every read subcommand against them,
// expel of a fourth, SIGTERM to all at once (each exits 0 within its
// drain), a cold restart one process at a time (each waited for only to
// run), and a kill -9 of one restarted on a new port without -join.
func TestThreeNodeProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts OS processes")
	}
	dir := t.TempDir()
	if code, _, stderr := runCmd(t, "ca", "init", "-dir", dir); code != 0 {
		t.Fatal(stderr)
	}
	names := []string{"v1", "v2", "v3"}
	for _, n := range append(names, "v4", "ops") {
		if code, _, stderr := runCmd(t, "cert", "issue", n, "-dir", dir); code != 0 {
			t.Fatal(stderr)
		}
	}
	data := func(n string) string { return filepath.Join(dir, "data-"+n) }
	ps := make([]*proc, 3)
	ps[0] = startNode(t, dir, "v1", "-data", data("v1"))
	ps[0].next("SERVING ")
	for i := 1; i < 3; i++ {
		ps[i] = startNode(t, dir, names[i], "-data", data(names[i]), "-join", ps[0].addr)
		ps[i].next("SERVING ")
	}

	// The read commands, through each node's endpoint.
	for _, p := range ps {
		if out := opsCmd(t, dir, p.admin, "ready", "-wait", "10s"); !strings.Contains(out, "ready "+p.name) {
			t.Fatalf("ready on %s said %q", p.name, out)
		}
	}
	ms := members(t, dir, ps[2].admin)
	leaders, voters := 0, 0
	for _, n := range names {
		m, ok := ms[n]
		if !ok || m.State != "alive" {
			t.Fatalf("members: %s = %+v, %v", n, m, ok)
		}
		if m.Leader {
			leaders++
		}
		if m.Voter {
			voters++
		}
	}
	if leaders != 1 || voters != 3 {
		t.Fatalf("members: %d leaders, %d voters: %+v", leaders, voters, ms)
	}
	table := opsCmd(t, dir, ps[2].admin, "members") // v3's replica has every join (above)
	if lines := strings.Split(strings.TrimSpace(table), "\n"); len(lines) != 4 || !strings.HasPrefix(lines[0], "ID") {
		t.Fatalf("members table:\n%s", table)
	}
	if out := opsCmd(t, dir, ps[0].admin, "status"); !strings.Contains(out, "node v1, leader v") {
		t.Fatalf("status:\n%s", out)
	}
	if out := opsCmd(t, dir, ps[0].admin, "actors", "-type", "Counter"); strings.TrimSpace(out) != "ID  TYPE  NODE  STATE  EPOCH  RESTARTS" {
		t.Fatalf("actors of a cluster of registry members:\n%q", out)
	}
	v4 := startNode(t, dir, "v4", "-join", ps[0].addr, "-drain", "1s")
	v4.next("SERVING ")
	if out := opsCmd(t, dir, ps[1].admin, "expel", "v4"); !strings.Contains(out, "expelled v4") {
		t.Fatalf("expel: %q", out)
	}
	if m := members(t, dir, ps[0].admin)["v4"]; m.State != "expelled" {
		t.Fatalf("v4 after the expel: %+v", m)
	}
	v4.kill()

	// SIGTERM to every node at once: each exits 0 within its drain.
	for _, p := range ps {
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range ps {
		if code := p.wait(15 * time.Second); code != 0 {
			t.Fatalf("%s exited %d after SIGTERM; stderr:\n%s", p.name, code, p.stderr.String())
		}
	}

	// Cold restart, one process at a time, on the same addresses: each is
	// waited for only to run (READY); then all serve.
	for i, n := range names {
		ps[i] = startNode(t, dir, n, "-data", data(n), "-addr", ps[i].addr)
	}
	for _, p := range ps {
		p.next("SERVING ")
		opsCmd(t, dir, p.admin, "ready", "-wait", "10s")
	}

	// kill -9 of one, restarted on a new port without -join: it finds its
	// peers from its own Raft configuration.
	old := ps[1].addr
	ps[1].kill()
	ps[1] = startNode(t, dir, "v2", "-data", data("v2"))
	ps[1].next("SERVING ")
	if ps[1].addr == old {
		t.Fatalf("v2 restarted on its old address %s", old)
	}
	// SERVING: its own replica has applied its join, new address and all.
	if m := members(t, dir, ps[1].admin)["v2"]; m.Addr != ps[1].addr || m.State != "alive" {
		t.Fatalf("v2 sees itself as %+v, want alive at %s", m, ps[1].addr)
	}
	if out := opsCmd(t, dir, ps[0].admin, "ready", "-wait", "10s"); !strings.Contains(out, "ready v1") {
		t.Fatalf("ready on v1 after v2's restart: %q", out)
	}
	for _, p := range ps {
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range ps {
		if code := p.wait(15 * time.Second); code != 0 {
			t.Errorf("%s exited %d after SIGTERM; stderr:\n%s", p.name, code, p.stderr.String())
		}
	}
}
