package main

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

// TestMain doubles as the worker entry point: the cluster scenarios start
// os.Executable(), which under go test is this test binary.
func TestMain(m *testing.M) {
	if os.Getenv(workerEnv) != "" {
		os.Exit(workerMain())
	}
	goleak.VerifyTestMain(m)
}
