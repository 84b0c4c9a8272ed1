package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestQuickstart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out bytes.Buffer
	if err := run(ctx, &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	for _, want := range []string{
		"cluster members: [n1 n2 n3], Raft leader: n",
		"spawned counter-1 on n1",
		"spawned counter-3 on n3",
		"counter-3.Add(30) = 30",
		"n2 looked up counter-3: hosted on n3",
		"watch: counter-3 restarted on n",
		"failover: the same ref now answers from n",
		"members after the failure: [n1 n2], Raft leader: n",
		"done: closing n1 and n2",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
