package troupe

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
)

// logRecords is a slog.Handler that keeps every record with its
// attributes flattened into key=value strings.
type logRecords struct {
	mu   *sync.Mutex
	recs *[]logRecord
	with []slog.Attr
}

type logRecord struct {
	level slog.Level
	msg   string
	attrs map[string]string
}

func newLogRecords() logRecords {
	return logRecords{mu: new(sync.Mutex), recs: new([]logRecord)}
}

func (h logRecords) Enabled(context.Context, slog.Level) bool { return true }

func (h logRecords) Handle(_ context.Context, r slog.Record) error {
	rec := logRecord{level: r.Level, msg: r.Message, attrs: map[string]string{}}
	var add func(prefix string, a slog.Attr)
	add = func(prefix string, a slog.Attr) {
		if a.Value.Kind() == slog.KindGroup {
			for _, g := range a.Value.Group() {
				add(prefix, g)
			}
			return
		}
		rec.attrs[prefix+a.Key] = a.Value.String()
	}
	for _, a := range h.with {
		add("", a)
	}
	r.Attrs(func(a slog.Attr) bool { add("", a); return true })
	h.mu.Lock()
	*h.recs = append(*h.recs, rec)
	h.mu.Unlock()
	return nil
}

func (h logRecords) WithAttrs(as []slog.Attr) slog.Handler {
	h.with = append(slices.Clip(h.with), as...)
	return h
}

func (h logRecords) WithGroup(string) slog.Handler { return h }

// find returns the records at level whose message is msg and whose
// attributes include want.
func (h logRecords) find(level slog.Level, msg string, want map[string]string) []logRecord {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []logRecord
	for _, r := range *h.recs {
		if r.level != level || r.msg != msg {
			continue
		}
		ok := true
		for k, v := range want {
			if r.attrs[k] != v {
				ok = false
			}
		}
		if ok {
			out = append(out, r)
		}
	}
	return out
}

func (h logRecords) all() []logRecord {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(*h.recs)
}

// TestLogLevels: what an operator reads at Info and above — membership
// changes and placements moved at Info, a crash at Error naming the actor,
// its type, the method and the node, and no Error for a graceful leave.
func TestLogLevels(t *testing.T) {
	logs := map[string]logRecords{"n1": newLogRecords(), "n2": newLogRecords()}
	c := newTestCluster(t, false, 2, func(cfg *Config) { cfg.Logger = slog.New(logs[cfg.Name]) })
	ctx := ctxT(t)
	n1, n2 := c.nodes[0], c.nodes[1]
	if got := logs["n1"].find(slog.LevelInfo, "troupe: member joined", map[string]string{"node": "n1", "peer": "n2"}); len(got) != 1 {
		t.Fatalf("n1 logged n2's join %d times at Info: %v", len(got), logs["n1"].all())
	}
	ref := must[Ref](t)(n1.Spawn(ctx, "Counter", OnNode("n2"), WithName("crashy"), WithRestart(RestartPolicy{MaxRestarts: -1})))
	if _, err := Call[int](ctx, ref, "Panic").Await(ctx); !errors.Is(err, ErrPanicked) {
		t.Fatalf("Panic = %v", err)
	}
	crash := logs["n2"].find(slog.LevelError, "troupe: actor crashed",
		map[string]string{"node": "n2", "actor": "crashy", "type": "Counter", "method": "Panic"})
	if len(crash) != 1 || !strings.Contains(crash[0].attrs["err"], "boom") || !strings.Contains(crash[0].attrs["stack"], "Counter") {
		t.Fatalf("crash records on n2: %v", logs["n2"].all())
	}
	events := must[<-chan ActorEvent](t)(n1.Watch(ctx, ref))
	if err := n2.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if ev := nextEvent(t, events); ev.Kind != Moved {
		t.Fatalf("event %v, want moved", ev.Kind)
	}
	if got := logs["n1"].find(slog.LevelInfo, "troupe: actor placed here", map[string]string{"actor": "crashy", "type": "Counter", "from": "n2"}); len(got) != 1 {
		t.Fatalf("the move to n1 logged %d times: %v", len(got), logs["n1"].all())
	}
	if got := logs["n1"].find(slog.LevelInfo, "troupe: member left", map[string]string{"peer": "n2"}); len(got) != 1 {
		t.Fatalf("n2's leave logged %d times on n1", len(got))
	}
	for name, l := range logs {
		for _, r := range l.all() {
			if r.level >= slog.LevelError && r.msg != "troupe: actor crashed" {
				t.Errorf("%s logged at %v: %s %v", name, r.level, r.msg, r.attrs)
			}
		}
	}
}
