package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Figure is one measured number of a scenario.
type Figure struct {
	Name  string  `json:"name"`  // "throughput", "p50", ...
	Value float64 `json:"value"` // in Unit
	Unit  string  `json:"unit"`  // "msgs/s", "µs", "B/actor", ...
	// Higher is true when a larger value is better (throughput), false
	// when smaller is (latency, memory, failover time).
	Higher bool `json:"higher"`
	// Samples are the values of the rounds Value is the median of (the
	// scenarios that run several alternating rounds); empty otherwise.
	Samples []float64 `json:"samples,omitempty"`
}

// spread returns the lowest and highest sample, or Value twice.
func (f Figure) spread() (lo, hi float64) {
	if len(f.Samples) == 0 {
		return f.Value, f.Value
	}
	return slices.Min(f.Samples), slices.Max(f.Samples)
}

// medianFigures merges the figures of several rounds of one scenario:
// each figure's Value is its median over the rounds and its Samples are the
// rounds' values, in order. Figures keep the order of the first round.
func medianFigures(rounds [][]Figure) []Figure {
	if len(rounds) == 0 {
		return nil
	}
	var out []Figure
	for _, f := range rounds[0] {
		var vals []float64
		for _, r := range rounds {
			for _, g := range r {
				if g.Name == f.Name {
					vals = append(vals, g.Value)
				}
			}
		}
		m := f
		m.Samples = vals
		sorted := slices.Clone(vals)
		slices.Sort(sorted)
		m.Value = sorted[len(sorted)/2]
		if len(sorted)%2 == 0 {
			m.Value = (sorted[len(sorted)/2-1] + sorted[len(sorted)/2]) / 2
		}
		out = append(out, m)
	}
	return out
}

// Setup says what a scenario ran on.
type Setup struct {
	Nodes     int    `json:"nodes"`     // troupe nodes (or actor systems)
	Processes int    `json:"processes"` // OS processes
	InFlight  int    `json:"in_flight"` // concurrent requests or senders
	Payload   int    `json:"payload"`   // argument bytes per message
	Duration  string `json:"duration"`  // measured wall time
	Ops       int64  `json:"ops"`       // operations measured
	Notes     string `json:"notes,omitempty"`
}

func (s Setup) String() string {
	str := fmt.Sprintf("nodes=%d procs=%d inflight=%d payload=%dB ops=%d dur=%s",
		s.Nodes, s.Processes, s.InFlight, s.Payload, s.Ops, s.Duration)
	if s.Notes != "" {
		str += " (" + s.Notes + ")"
	}
	return str
}

// Result is the outcome of one scenario.
type Result struct {
	Scenario string   `json:"scenario"`
	Setup    Setup    `json:"setup"`
	Figures  []Figure `json:"figures"`
	Error    string   `json:"error,omitempty"`
}

// Report is what -json writes and -compare reads.
type Report struct {
	Time       time.Time `json:"time"`
	GoVersion  string    `json:"go_version"`
	GOOS       string    `json:"goos"`
	GOARCH     string    `json:"goarch"`
	GOMAXPROCS int       `json:"gomaxprocs"`
	NumCPU     int       `json:"num_cpu"`
	CPU        string    `json:"cpu"`
	Commit     string    `json:"commit"`
	Quick      bool      `json:"quick"`
	LoadStart  string    `json:"load_start"` // /proc/loadavg when the suite started
	LoadEnd    string    `json:"load_end"`   // and when it ended
	Duration   string    `json:"duration"`   // the -duration flag
	Results    []Result  `json:"results"`
}

func newReport(quick bool, d time.Duration) *Report {
	return &Report{
		Time:       time.Now().UTC(),
		GoVersion:  runtime.Version(),
		GOOS:       runtime.GOOS,
		GOARCH:     runtime.GOARCH,
		GOMAXPROCS: runtime.GOMAXPROCS(0),
		NumCPU:     runtime.NumCPU(),
		CPU:        cpuModel(),
		Commit:     gitCommit(),
		Quick:      quick,
		Duration:   d.String(),
		LoadStart:  loadAvg(),
	}
}

// loadAvg returns the 1, 5 and 15 minute load averages, or "unknown": the
// suite is often run on shared machines, and the load explains the noise.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// cpuModel returns the first "model name" of /proc/cpuinfo, or "unknown".
func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

// gitCommit returns the commit of the working tree (with "-dirty" when it
// has changes), or "unknown" without git or outside a repository.
func gitCommit() string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "git", "rev-parse", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	c := strings.TrimSpace(string(out))
	if st, err := exec.CommandContext(ctx, "git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(strings.TrimSpace(string(st))) > 0 {
		c += "-dirty"
	}
	return c
}

func (r *Report) writeJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

func readReport(path string) (*Report, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("bench: %s: %w", path, err)
	}
	return &r, nil
}

// printHeader prints the machine the report was measured on.
func (r *Report) printHeader(w io.Writer) {
	fmt.Fprintf(w, "troupe bench  %s  %s/%s  GOMAXPROCS=%d  cpu=%q  commit=%s  quick=%v\n",
		r.GoVersion, r.GOOS, r.GOARCH, r.GOMAXPROCS, r.CPU, r.Commit, r.Quick)
	fmt.Fprintf(w, "load average at start %s, at end %s\n\n", r.LoadStart, r.LoadEnd)
}

// printTable prints every result: its setup, then one row per figure.
func printTable(w io.Writer, results []Result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SCENARIO\tFIGURE\tVALUE\tUNIT\tSPREAD")
	for _, r := range results {
		if r.Error != "" {
			// The last cell of a line does not widen its column.
			fmt.Fprintf(tw, "%s\tERROR: %s\n", r.Scenario, r.Error)
			continue
		}
		for i, f := range r.Figures {
			name := ""
			if i == 0 {
				name = r.Scenario
			}
			spread := ""
			if len(f.Samples) > 1 {
				lo, hi := f.spread()
				spread = fmt.Sprintf("%s–%s over %d rounds", human(lo), human(hi), len(f.Samples))
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", name, f.Name, human(f.Value), f.Unit, spread)
		}
		fmt.Fprintf(tw, "\tsetup: %s\n", r.Setup)
	}
	tw.Flush()
}

// human formats v with three significant digits and a k/M/G suffix.
func human(v float64) string {
	switch av := max(v, -v); {
	case av >= 1e9:
		return fmt.Sprintf("%.3gG", v/1e9)
	case av >= 1e6:
		return fmt.Sprintf("%.3gM", v/1e6)
	case av >= 1e4:
		return fmt.Sprintf("%.3gk", v/1e3)
	case av >= 100:
		return fmt.Sprintf("%.0f", v)
	default:
		return fmt.Sprintf("%.3g", v)
	}
}

// Comparison is one figure present in both reports.
type Comparison struct {
	Scenario, Figure, Unit string
	Old, New, Ratio        float64 // Ratio is New/Old
	OldLo, OldHi           float64 // spread of the old rounds (Old twice for one round)
	NewLo, NewHi           float64
	Regression             bool // worse by more than 10%
}

// regressionLimit is the relative change beyond which a worse figure is
// marked as a regression.
const regressionLimit = 0.10

// compare matches figures by scenario and name.
func compare(old, cur *Report) []Comparison {
	prev := map[[2]string]Figure{}
	for _, r := range old.Results {
		for _, f := range r.Figures {
			prev[[2]string{r.Scenario, f.Name}] = f
		}
	}
	var out []Comparison
	for _, r := range cur.Results {
		for _, f := range r.Figures {
			o, ok := prev[[2]string{r.Scenario, f.Name}]
			if !ok || o.Value == 0 || o.Unit != f.Unit {
				continue
			}
			c := Comparison{Scenario: r.Scenario, Figure: f.Name, Unit: f.Unit, Old: o.Value, New: f.Value, Ratio: f.Value / o.Value}
			c.OldLo, c.OldHi = o.spread()
			c.NewLo, c.NewHi = f.spread()
			if f.Higher {
				c.Regression = c.Ratio < 1-regressionLimit
			} else {
				c.Regression = c.Ratio > 1+regressionLimit
			}
			out = append(out, c)
		}
	}
	return out
}

func printComparison(w io.Writer, oldPath string, cs []Comparison) {
	fmt.Fprintf(w, "\ncompared with %s (ratio = new/old; REGRESSION = worse by more than %.0f%%)\n", oldPath, regressionLimit*100)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SCENARIO\tFIGURE\tOLD\tNEW\tUNIT\tRATIO\tOLD SPREAD\tNEW SPREAD\t")
	for _, c := range cs {
		mark := ""
		if c.Regression {
			mark = "REGRESSION"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%.2f\t%s\t%s\t%s\n", c.Scenario, c.Figure, human(c.Old), human(c.New), c.Unit, c.Ratio,
			human(c.OldLo)+"–"+human(c.OldHi), human(c.NewLo)+"–"+human(c.NewHi), mark)
	}
	tw.Flush()
	n := 0
	for _, c := range cs {
		if c.Regression {
			n++
		}
	}
	fmt.Fprintf(w, "%d of %d figures regressed\n", n, len(cs))
}

// latency collects per-operation durations. Each goroutine that measures
// owns one; merge them at the end. It keeps at most maxSamples.
type latency struct{ samples []time.Duration }

const maxSamples = 2_000_000

func (l *latency) add(d time.Duration) {
	if len(l.samples) < maxSamples {
		l.samples = append(l.samples, d)
	}
}

func (l *latency) merge(o *latency) {
	n := min(len(o.samples), maxSamples-len(l.samples))
	l.samples = append(l.samples, o.samples[:n]...)
}

// figures returns p50, p99 and p99.9 in µs (fewer when there are too few
// samples for a percentile to mean anything).
func (l *latency) figures() []Figure {
	if len(l.samples) == 0 {
		return nil
	}
	s := slices.Clone(l.samples)
	slices.Sort(s)
	at := func(p float64) float64 {
		i := min(int(p*float64(len(s))), len(s)-1)
		return float64(s[i]) / float64(time.Microsecond)
	}
	out := []Figure{{Name: "p50", Value: at(0.50), Unit: "µs"}}
	if len(s) >= 100 {
		out = append(out, Figure{Name: "p99", Value: at(0.99), Unit: "µs"})
	}
	if len(s) >= 1000 {
		out = append(out, Figure{Name: "p99.9", Value: at(0.999), Unit: "µs"})
	}
	return out
}

func (l *latency) total() time.Duration {
	var t time.Duration
	for _, s := range l.samples {
		t += s
	}
	return t
}
