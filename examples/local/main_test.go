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

func TestTour(t *testing.T) {
	n := 1_000_000
	if testing.Short() {
		n = 10_000
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out bytes.Buffer
	if err := run(ctx, &out, n); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	for _, want := range []string{
		"spawned tour/counter",
		"total = 6",
		"the last saw total = 106",
		"after a crash: total = 0 (err <nil>); still tour/counter",
		"terminated, restart limit reached = true",
		"ask to the stopped counter fails at once: actor: dead letter",
		"Tell accepted 7 more",
		"context deadline exceeded",
		"Shutdown done",
		"Close with 100 messages queued behind it dropped 100",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
