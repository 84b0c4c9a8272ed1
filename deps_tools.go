//go:build tools

// This file pins the project's dependencies in go.mod until the packages that
// use them import them directly. Delete it once every one is imported.
package troupe

import (
	_ "github.com/anishathalye/porcupine"
	_ "github.com/hashicorp/raft"
	_ "github.com/hashicorp/raft-boltdb/v2"
	_ "github.com/quic-go/quic-go"
	_ "github.com/vmihailenco/msgpack/v5"
	_ "go.uber.org/goleak"
)
