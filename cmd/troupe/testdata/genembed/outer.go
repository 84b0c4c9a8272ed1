// Package genembed embeds genshapes.Leaky, whose promoted method takes a
// type the generated code could not name.
package genembed

import "github.com/troupe-dev/troupe/cmd/troupe/testdata/genshapes"

// Outer is an actor type with a promoted method Take([]genshapes.secret).
type Outer struct{ genshapes.Leaky }
