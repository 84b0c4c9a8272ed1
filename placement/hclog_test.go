package placement

import (
	"bytes"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/hashicorp/go-hclog"
)

func TestRaftLoggerKeepsLevels(t *testing.T) {
	var buf bytes.Buffer
	l := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug - 4}))
	var closing atomic.Bool
	rl := newRaftLogger(l, &closing)
	rl.SetLevel(hclog.Trace)
	rl.Trace("t-line", "k", 1)
	rl.Debug("d-line")
	rl.Info("i-line", "peer", "n2")
	rl.Warn("w-line")
	rl.Error("e-line", "error", "boom")
	rl.Named("snapshot").With("id", 7).Info("named-line")
	rl.StandardLogger(nil).Print("[WARN] std-line")
	out := buf.String()
	for _, want := range []string{
		`level=DEBUG-4 msg=t-line logger=raft k=1`,
		`level=DEBUG msg=d-line logger=raft`,
		`level=INFO msg=i-line logger=raft peer=n2`,
		`level=WARN msg=w-line`,
		`level=ERROR msg=e-line logger=raft error=boom`,
		`level=INFO msg=named-line logger=raft.snapshot id=7`,
		`level=WARN msg=std-line`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in\n%s", want, out)
		}
	}
}

func TestRaftLoggerQuietWhenClosing(t *testing.T) {
	var buf bytes.Buffer
	l := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	var closing atomic.Bool
	rl := newRaftLogger(l, &closing)
	rl.Error("before close")
	closing.Store(true)
	rl.Error("failed to contact", "peer", "n3")
	rl.Warn("heartbeat timeout")
	out := buf.String()
	if !strings.Contains(out, "before close") {
		t.Fatalf("an error before close was not logged:\n%s", out)
	}
	if strings.Contains(out, "failed to contact") || strings.Contains(out, "heartbeat timeout") {
		t.Fatalf("raft's shutdown lines were logged above Debug:\n%s", out)
	}
}

func TestRaftLoggerLevelFilter(t *testing.T) {
	var buf bytes.Buffer
	l := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	rl := newRaftLogger(l, nil)
	if rl.IsDebug() {
		t.Fatal("IsDebug true at the default Info level")
	}
	rl.Debug("hidden")
	rl.SetLevel(hclog.Debug)
	if !rl.IsDebug() || rl.IsTrace() {
		t.Fatalf("IsDebug %v IsTrace %v at Debug", rl.IsDebug(), rl.IsTrace())
	}
	rl.Debug("shown")
	if out := buf.String(); strings.Contains(out, "hidden") || !strings.Contains(out, "shown") {
		t.Fatalf("level filter: %s", out)
	}
}
