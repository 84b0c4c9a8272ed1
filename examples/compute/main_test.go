package main

import (
	"bytes"
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestRun(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out bytes.Buffer
	sum, err := run(ctx, &out, 12)
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatal(err)
	}
	if sum.Retried != 3 {
		t.Errorf("%d tasks retried, want 3 (tasks 3, 7, 11)", sum.Retried)
	}
	total := 0
	for _, n := range sum.PerNode {
		total += n
	}
	if len(sum.PerNode) != 3 || total != 12 {
		t.Errorf("tasks per node %v: want 12 tasks over 3 nodes", sum.PerNode)
	}
}
