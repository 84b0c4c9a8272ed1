package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestMain doubles as the child entry point: the launcher starts
// os.Executable(), which under go test is this test binary.
func TestMain(m *testing.M) {
	if os.Getenv(clientEnv) != "" {
		os.Exit(clientChild())
	}
	if os.Getenv(childEnv) != "" {
		os.Exit(child())
	}
	goleak.VerifyTestMain(m)
}

func TestRun(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out bytes.Buffer
	err := run(ctx, &out, 6)
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatal(err)
	}
	s := out.String()
	for _, want := range []string{"members seen by n1: [n1 n2 n3], Raft leader: n", "node n3, epoch", "answers again", "members seen by n1: [n1 n2]",
		"virtual Counter/alice.Add(5) = 5", "map: 3000 of 3000 inputs answered", "virtual Counter/alice answers from n",
		"app: counter-0.Add(1) = 11, answered by n", "app: virtual Counter/bob.Add(2) = 2", ": Add(3) = 3", "app: members seen by the client: [n1 n2 n3]",
		"members seen by n1 after the client: [n1 n2 n3]"} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if strings.Contains(s[strings.LastIndex(s, "members seen by n1: [n1 n2]"):], "node n3") {
		t.Errorf("an actor is still placed on n3 after the failover")
	}
}
