package placement

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"strings"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"
)

// raftLogger is hashicorp/raft's hclog.Logger on top of the node's slog
// logger: every line keeps its level (Trace and Debug at slog's Debug, Info,
// Warn and Error at theirs), its key/value pairs as attributes, and its
// logger name as the "logger" attribute. Once the node begins to leave or
// close, Raft's lines drop to Debug: a normal shutdown tears down
// connections and replication on purpose, and what Raft says about it is
// not a warning.
type raftLogger struct {
	l       *slog.Logger
	name    string
	args    []any
	closing *atomic.Bool
	level   *atomic.Int32 // hclog.Level; shared by the loggers derived from one
}

func newRaftLogger(l *slog.Logger, closing *atomic.Bool) *raftLogger {
	lv := new(atomic.Int32)
	lv.Store(int32(hclog.Info))
	return &raftLogger{l: l, name: "raft", closing: closing, level: lv}
}

// slogLevel maps an hclog level to slog's.
func slogLevel(l hclog.Level) slog.Level {
	switch l {
	case hclog.Trace:
		return slog.LevelDebug - 4
	case hclog.Debug:
		return slog.LevelDebug
	case hclog.Warn:
		return slog.LevelWarn
	case hclog.Error:
		return slog.LevelError
	}
	return slog.LevelInfo
}

func (r *raftLogger) Log(level hclog.Level, msg string, args ...any) {
	if level == hclog.Off || level < hclog.Level(r.level.Load()) {
		return
	}
	sl := slogLevel(level)
	if r.closing != nil && r.closing.Load() && sl > slog.LevelDebug {
		sl = slog.LevelDebug
	}
	ctx := context.Background()
	if !r.l.Enabled(ctx, sl) {
		return
	}
	attrs := make([]any, 0, 2+len(r.args)+len(args))
	attrs = append(attrs, "logger", r.name)
	attrs = append(attrs, r.args...)
	attrs = append(attrs, pairs(args)...)
	r.l.Log(ctx, sl, msg, attrs...)
}

// pairs turns hclog's key/value list into slog's: keys are strings, a
// lone last value gets the key "EXTRA_VALUE_AT_END" as hclog does.
func pairs(args []any) []any {
	out := make([]any, 0, len(args))
	for i := 0; i < len(args); i += 2 {
		key := fmt.Sprint(args[i])
		if i+1 == len(args) {
			out = append(out, "EXTRA_VALUE_AT_END", args[i])
			break
		}
		v := args[i+1]
		if f, ok := v.(hclog.Format); ok {
			v = fmt.Sprintf(f[0].(string), f[1:]...)
		}
		out = append(out, key, v)
	}
	return out
}

func (r *raftLogger) Trace(msg string, args ...any) { r.Log(hclog.Trace, msg, args...) }
func (r *raftLogger) Debug(msg string, args ...any) { r.Log(hclog.Debug, msg, args...) }
func (r *raftLogger) Info(msg string, args ...any)  { r.Log(hclog.Info, msg, args...) }
func (r *raftLogger) Warn(msg string, args ...any)  { r.Log(hclog.Warn, msg, args...) }
func (r *raftLogger) Error(msg string, args ...any) { r.Log(hclog.Error, msg, args...) }

func (r *raftLogger) enabled(l hclog.Level) bool {
	return l >= hclog.Level(r.level.Load()) && r.l.Enabled(context.Background(), slogLevel(l))
}

func (r *raftLogger) IsTrace() bool { return r.enabled(hclog.Trace) }
func (r *raftLogger) IsDebug() bool { return r.enabled(hclog.Debug) }
func (r *raftLogger) IsInfo() bool  { return r.enabled(hclog.Info) }
func (r *raftLogger) IsWarn() bool  { return r.enabled(hclog.Warn) }
func (r *raftLogger) IsError() bool { return r.enabled(hclog.Error) }

func (r *raftLogger) ImpliedArgs() []any { return r.args }

func (r *raftLogger) With(args ...any) hclog.Logger {
	c := *r
	c.args = append(append([]any{}, r.args...), pairs(args)...)
	return &c
}

func (r *raftLogger) Name() string { return r.name }

func (r *raftLogger) Named(name string) hclog.Logger {
	c := *r
	if c.name != "" {
		c.name += "." + name
	} else {
		c.name = name
	}
	return &c
}

func (r *raftLogger) ResetNamed(name string) hclog.Logger {
	c := *r
	c.name = name
	return &c
}

func (r *raftLogger) SetLevel(level hclog.Level) { r.level.Store(int32(level)) }
func (r *raftLogger) GetLevel() hclog.Level      { return hclog.Level(r.level.Load()) }

func (r *raftLogger) StandardLogger(opts *hclog.StandardLoggerOptions) *log.Logger {
	return log.New(r.StandardWriter(opts), "", 0)
}

func (r *raftLogger) StandardWriter(opts *hclog.StandardLoggerOptions) io.Writer {
	return stdWriter{r: r, opts: opts}
}

// stdWriter is a standard library logger's output: hclog's "[LEVEL] msg"
// prefix convention picks the level, Info otherwise.
type stdWriter struct {
	r    *raftLogger
	opts *hclog.StandardLoggerOptions
}

func (w stdWriter) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	level := hclog.Info
	if w.opts != nil && w.opts.ForceLevel != hclog.NoLevel {
		level = w.opts.ForceLevel
	}
	for _, l := range []struct {
		prefix string
		level  hclog.Level
	}{{"[TRACE]", hclog.Trace}, {"[DEBUG]", hclog.Debug}, {"[INFO]", hclog.Info}, {"[WARN]", hclog.Warn}, {"[ERR]", hclog.Error}, {"[ERROR]", hclog.Error}} {
		if rest, ok := strings.CutPrefix(line, l.prefix); ok {
			line, level = strings.TrimSpace(rest), l.level
			break
		}
	}
	w.r.Log(level, line)
	return len(p), nil
}
