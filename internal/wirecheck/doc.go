// Package wirecheck validates msgpack bytes from the network before any
// reflection-based decoder sees them. Value walks exactly one msgpack value
// without recursion and checks that every string, bin and ext length and
// every array and map element count fits in the bytes that remain, that the
// nesting is no deeper than a bound, and that the reserved code 0xc1 does
// not occur. A value that passes costs a decoder at most what its bytes
// hold: no header can make it allocate for elements that are not there, and
// no nesting can exhaust its stack. placement and remote call it on every
// frame, log entry, snapshot and argument array before msgpack decodes it.
package wirecheck
