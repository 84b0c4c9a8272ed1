package troupe

import (
	"context"
	"testing"
	"time"
)

// TestWholeClusterStopsAtOnce: SIGTERM to every node at once, as an
// operator stopping a cluster does: each Stop returns without error within
// its drain timeout — none waits for a hand-over or a Raft removal that
// nobody is left to make — over QUIC, with DataDirs.
func TestWholeClusterStopsAtOnce(t *testing.T) {
	c := newTestCluster(t, true, 3, func(cfg *Config) { cfg.DataDir = t.TempDir() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	errs := make(chan error, len(c.nodes))
	for _, n := range c.nodes {
		go func() { errs <- n.Stop(ctx) }()
	}
	for range c.nodes {
		if err := <-errs; err != nil {
			t.Errorf("Stop: %v", err)
		}
	}
}
