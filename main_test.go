package troupe

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if os.Getenv(ownerChildEnv) != "" {
		os.Exit(ownerChild()) // a client process of TestKilledClientProcess
	}
	goleak.VerifyTestMain(m)
}
