package placement

// RehomeLast returns the id of ids that a failover moves last (in the
// last chunk) when all of them are on the failed node: benchmarks in
// package placement_test wait for it.
func RehomeLast(ids []string) string {
	o := rehomeOrder(ids, nil)
	return o[len(o)-1]
}
