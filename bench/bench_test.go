package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func runSuite(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out, errOut bytes.Buffer
	code = run(ctx, args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestLocalScenariosJSON(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.json")
	code, out, errOut := runSuite(t, "-quick", "-duration", "30ms", "-scenario", "^local-", "-json", path)
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	rep, err := readReport(path)
	if err != nil {
		t.Fatal(err)
	}
	if rep.GoVersion == "" || rep.GOMAXPROCS < 1 || rep.CPU == "" || rep.Commit == "" || !rep.Quick || rep.LoadStart == "" || rep.LoadEnd == "" {
		t.Errorf("report header incomplete: %+v", rep)
	}
	want := []string{"local-tell/1", "local-tell/100", "local-ask/1", "local-ask/64", "local-spawn"}
	if len(rep.Results) != len(want) {
		t.Fatalf("got %d results, want %d", len(rep.Results), len(want))
	}
	for i, r := range rep.Results {
		if r.Scenario != want[i] {
			t.Errorf("result %d is %q, want %q", i, r.Scenario, want[i])
		}
		if r.Error != "" || len(r.Figures) == 0 || r.Setup.Ops == 0 {
			t.Errorf("%s: error %q, %d figures, %d ops", r.Scenario, r.Error, len(r.Figures), r.Setup.Ops)
		}
		for _, f := range r.Figures {
			if !(f.Value > 0) || f.Unit == "" {
				t.Errorf("%s: figure %+v", r.Scenario, f)
			}
		}
		if !strings.Contains(out, r.Scenario) {
			t.Errorf("table lacks %s:\n%s", r.Scenario, out)
		}
	}
	for _, s := range want {
		if !strings.Contains(errOut, s+": done") {
			t.Errorf("no progress line for %s on stderr:\n%s", s, errOut)
		}
	}
}

func TestCompareFlag(t *testing.T) {
	dir := t.TempDir()
	cur := filepath.Join(dir, "cur.json")
	if code, out, errOut := runSuite(t, "-quick", "-duration", "30ms", "-scenario", "^local-ask/1$", "-json", cur); code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	// An "old" run ten times faster makes every throughput a regression;
	// the exit status must still be 0.
	rep, err := readReport(cur)
	if err != nil {
		t.Fatal(err)
	}
	for i := range rep.Results[0].Figures {
		f := &rep.Results[0].Figures[i]
		if f.Higher {
			f.Value *= 10
		}
	}
	old := filepath.Join(dir, "old.json")
	if err := rep.writeJSON(old); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runSuite(t, "-quick", "-duration", "30ms", "-scenario", "^local-ask/1$", "-compare", old)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	if !strings.Contains(out, "compared with "+old) || !strings.Contains(out, "REGRESSION") {
		t.Errorf("comparison missing or without a regression:\n%s", out)
	}
}

func TestMedianFigures(t *testing.T) {
	rounds := [][]Figure{
		{{Name: "throughput", Value: 30, Unit: "rt/s", Higher: true}, {Name: "p50", Value: 9, Unit: "µs"}},
		{{Name: "throughput", Value: 10, Unit: "rt/s", Higher: true}, {Name: "p50", Value: 7, Unit: "µs"}},
		{{Name: "throughput", Value: 20, Unit: "rt/s", Higher: true}, {Name: "p50", Value: 8, Unit: "µs"}},
	}
	got := medianFigures(rounds)
	if len(got) != 2 || got[0].Name != "throughput" || got[0].Value != 20 || got[1].Value != 8 {
		t.Fatalf("medians %+v", got)
	}
	if lo, hi := got[0].spread(); lo != 10 || hi != 30 || !slices.Equal(got[0].Samples, []float64{30, 10, 20}) {
		t.Fatalf("spread %v–%v, samples %v", lo, hi, got[0].Samples)
	}
	if even := medianFigures(rounds[:2]); even[0].Value != 20 {
		t.Fatalf("median of two rounds = %v, want their mean 20", even[0].Value)
	}
}

func TestCompare(t *testing.T) {
	report := func(figs ...Figure) *Report {
		return &Report{Results: []Result{{Scenario: "s", Figures: figs}}}
	}
	for _, tc := range []struct {
		name      string
		old, cur  Figure
		matched   bool
		ratio     float64
		regressed bool
	}{
		{"throughput same", Figure{Name: "t", Value: 100, Unit: "x/s", Higher: true}, Figure{Name: "t", Value: 100, Unit: "x/s", Higher: true}, true, 1, false},
		{"throughput -5%", Figure{Name: "t", Value: 100, Unit: "x/s", Higher: true}, Figure{Name: "t", Value: 95, Unit: "x/s", Higher: true}, true, 0.95, false},
		{"throughput -15%", Figure{Name: "t", Value: 100, Unit: "x/s", Higher: true}, Figure{Name: "t", Value: 85, Unit: "x/s", Higher: true}, true, 0.85, true},
		{"throughput +50%", Figure{Name: "t", Value: 100, Unit: "x/s", Higher: true}, Figure{Name: "t", Value: 150, Unit: "x/s", Higher: true}, true, 1.5, false},
		{"latency +5%", Figure{Name: "p50", Value: 100, Unit: "µs", Higher: false}, Figure{Name: "p50", Value: 105, Unit: "µs", Higher: false}, true, 1.05, false},
		{"latency +20%", Figure{Name: "p50", Value: 100, Unit: "µs", Higher: false}, Figure{Name: "p50", Value: 120, Unit: "µs", Higher: false}, true, 1.2, true},
		{"latency -50%", Figure{Name: "p50", Value: 100, Unit: "µs", Higher: false}, Figure{Name: "p50", Value: 50, Unit: "µs", Higher: false}, true, 0.5, false},
		{"other unit", Figure{Name: "t", Value: 100, Unit: "x/s", Higher: true}, Figure{Name: "t", Value: 100, Unit: "y/s", Higher: true}, false, 0, false},
		{"other name", Figure{Name: "t", Value: 100, Unit: "x/s", Higher: true}, Figure{Name: "u", Value: 100, Unit: "x/s", Higher: true}, false, 0, false},
		{"old zero", Figure{Name: "t", Value: 0, Unit: "x/s", Higher: true}, Figure{Name: "t", Value: 100, Unit: "x/s", Higher: true}, false, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cs := compare(report(tc.old), report(tc.cur))
			if !tc.matched {
				if len(cs) != 0 {
					t.Fatalf("got %+v, want no comparison", cs)
				}
				return
			}
			if len(cs) != 1 {
				t.Fatalf("got %d comparisons, want 1", len(cs))
			}
			if d := cs[0].Ratio - tc.ratio; d > 1e-9 || d < -1e-9 || cs[0].Regression != tc.regressed {
				t.Errorf("got ratio %v regression %v, want %v %v", cs[0].Ratio, cs[0].Regression, tc.ratio, tc.regressed)
			}
		})
	}
}

func TestBadInvocations(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"no match", []string{"-scenario", "^nothing$"}},
		{"bad regexp", []string{"-scenario", "("}},
		{"missing compare file", []string{"-scenario", "^local-ask/1$", "-compare", filepath.Join(t.TempDir(), "none.json")}},
		{"stray argument", []string{"extra"}},
		{"negative duration", []string{"-duration", "-1s"}},
		{"fail timeout too short", []string{"-scenario", "^failover$", "-fail-timeout", "400ms"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if code, _, _ := runSuite(t, tc.args...); code != 2 {
				t.Errorf("exit %d, want 2", code)
			}
		})
	}
}

func TestFailingScenarioExitsNonZero(t *testing.T) {
	saved := scenarios
	t.Cleanup(func() { scenarios = saved })
	scenarios = append(scenarios[:len(scenarios):len(scenarios)], scenario{"broken", "always fails", func(context.Context, *env) (*Result, error) {
		return nil, errors.New("deliberate")
	}, 0})
	code, out, _ := runSuite(t, "-quick", "-duration", "10ms", "-scenario", "^(broken|local-ask/1)$")
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	if !strings.Contains(out, "broken") || !strings.Contains(out, "deliberate") || !strings.Contains(out, "local-ask/1") {
		t.Errorf("table should show the failure and the other result:\n%s", out)
	}
}

func TestList(t *testing.T) {
	code, out, _ := runSuite(t, "-list")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, s := range scenarios {
		if !strings.Contains(out, s.name) {
			t.Errorf("-list lacks %s", s.name)
		}
	}
}

func TestLatencyFigures(t *testing.T) {
	var l latency
	for i := 1000; i >= 1; i-- {
		l.add(time.Duration(i) * time.Microsecond)
	}
	got := map[string]float64{}
	for _, f := range l.figures() {
		got[f.Name] = f.Value
	}
	want := map[string]float64{"p50": 501, "p99": 991, "p99.9": 1000}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	var few latency
	few.add(time.Millisecond)
	if fs := few.figures(); len(fs) != 1 || fs[0].Name != "p50" {
		t.Errorf("one sample gives %+v, want p50 only", fs)
	}
}

// TestClusterScenarios runs the multi-process scenarios in a tiny mode:
// worker processes (this test binary, see TestMain), a remote call, one-way
// sends (with the lost count), the memory probe, a kill -9 failover and a
// kill -9 of the Raft leader under load. Everything the suite started must
// be gone afterwards.
func TestClusterScenarios(t *testing.T) {
	if testing.Short() {
		t.Skip("starts worker processes")
	}
	path := filepath.Join(t.TempDir(), "r.json")
	code, out, errOut := runSuite(t, "-quick", "-duration", "50ms", "-scenario", "^(remote-call/1|remote-tell|registered-memory|failover|leader-kill)$", "-json", path)
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	rep, err := readReport(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) != 5 {
		t.Fatalf("%d results, want 5", len(rep.Results))
	}
	want := map[string][]string{"remote-tell": {"lost"}, "leader-kill": {"failed-calls", "added-p99", "added-max"}}
	for _, r := range rep.Results {
		if r.Error != "" || len(r.Figures) == 0 {
			t.Errorf("%s: %q %+v", r.Scenario, r.Error, r.Figures)
		}
		for _, name := range want[r.Scenario] {
			if !slices.ContainsFunc(r.Figures, func(f Figure) bool { return f.Name == name }) {
				t.Errorf("%s reports no %q: %+v", r.Scenario, name, r.Figures)
			}
		}
	}
	if !strings.Contains(errOut, "lk1 (leader) killed") {
		t.Errorf("leader-kill did not kill the leader:\n%s", errOut)
	}
	if n := strings.Count(errOut, "killed, actor answered from"); n != 3 {
		t.Errorf("%d failover trials reported, want 3:\n%s", n, errOut)
	}
}

// TestFailoverAtScaleScenario runs the at-scale scenarios with a few
// thousand actors, killing a host, then (another cluster) the leader, then
// (a third, durable) a host that starts again at once: the kill under load
// must fail no call to the hosts that stay; every actor of a dead host
// must answer elsewhere, and every actor of the restarted one from it.
// FailTimeout is 2s, not the suite's 800ms: a restart is "at once" when
// it is back within FailTimeout, and a worker process of this race-built
// test binary, started while other packages' tests load the machine, took
// up to 0.7s to be ready (its actors then moved: stayed 0).
func TestFailoverAtScaleScenario(t *testing.T) {
	if testing.Short() {
		t.Skip("starts worker processes")
	}
	path := filepath.Join(t.TempDir(), "r.json")
	code, out, errOut := runSuite(t, "-quick", "-duration", "50ms", "-actors", "3000", "-fail-timeout", "2s", "-scenario", "^(failover|restart)-at-scale(/leader)?$", "-json", path)
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	rep, err := readReport(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) != 3 {
		t.Fatalf("%d results, want 3 (a host killed, the leader killed, a host restarted)", len(rep.Results))
	}
	for _, r := range rep.Results {
		if r.Error != "" {
			t.Errorf("%s: %s", r.Scenario, r.Error)
			continue
		}
		got := map[string]float64{}
		for _, f := range r.Figures {
			got[f.Name] = f.Value
		}
		want := map[string]float64{"failed-calls": 0, "unmoved": 0}
		timed := "moved max"
		if r.Scenario == "restart-at-scale" {
			// Back at once, within FailTimeout: its actors stay on it.
			want, timed = map[string]float64{"failed-calls": 0, "stayed": 1}, "serving max"
		}
		if !strings.Contains(r.Setup.Notes, "FailTimeout 2s") {
			t.Errorf("%s: -fail-timeout did not reach the setup: %s", r.Scenario, r.Setup.Notes)
		}
		for name, w := range want {
			if v, ok := got[name]; !ok || v != w {
				t.Errorf("%s: %s = %v (reported: %v), want %v; setup: %s", r.Scenario, name, v, ok, w, r.Setup)
			}
		}
		if got[timed] <= 0 || got["spawn rate"] <= 0 {
			t.Errorf("%s: figures %v", r.Scenario, got)
		}
		if r.Setup.Ops == 0 {
			t.Errorf("%s: no call measured: %s", r.Scenario, r.Setup)
		}
	}
}

// signalWriter collects what is written and closes hit once a line
// containing want has been written.
type signalWriter struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	want string
	hit  chan struct{}
	once sync.Once
}

func (w *signalWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(b)
	if strings.Contains(w.buf.String(), w.want) {
		w.once.Do(func() { close(w.hit) })
	}
	return len(b), nil
}

func (w *signalWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// children returns the pids of this process's child processes.
func children(t *testing.T) []int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Skip("no /proc")
	}
	var pids []int
	me := os.Getpid()
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "PPid:"); ok {
				if ppid, _ := strconv.Atoi(strings.TrimSpace(v)); ppid == me {
					pids = append(pids, pid)
				}
				break
			}
		}
		f.Close()
	}
	return pids
}

// TestInterruptEndsWorkers cancels the suite (as Ctrl-C does) while a
// cluster scenario runs: the suite reports the interruption, exits 1, and
// no worker process is left.
func TestInterruptEndsWorkers(t *testing.T) {
	if testing.Short() {
		t.Skip("starts worker processes")
	}
	if n := len(children(t)); n != 0 {
		t.Fatalf("%d child processes before the test", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// The progress ticker's line says the workers are up and the
	// measurement runs.
	errOut := &signalWriter{want: "remote-call/1 running", hit: make(chan struct{})}
	done := make(chan int, 1)
	var out bytes.Buffer
	go func() { done <- run(ctx, []string{"-duration", "30s", "-scenario", "^remote-call/1$"}, &out, errOut) }()
	select {
	case <-errOut.hit:
	case code := <-done:
		t.Fatalf("suite ended (exit %d) before the measurement ran:\n%s", code, errOut.String())
	case <-ctx.Done():
		t.Fatal("the measurement never ran")
	}
	cancel()
	if code := <-done; code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	if !strings.Contains(errOut.String(), "interrupted") {
		t.Errorf("no interruption reported:\n%s", errOut.String())
	}
	if pids := children(t); len(pids) != 0 {
		t.Errorf("worker processes left: %v", pids)
	}
}
