package actor

import "strconv"

// PID addresses one actor of one System. It is a small comparable value
// (one pointer): use it as a map key, copy it freely. The zero PID addresses
// nothing. A PID stays valid across restarts of its actor; after the actor
// stops, messages to it become dead letters.
type PID struct {
	p *process
}

// IsZero reports whether pid is the zero PID.
func (pid PID) IsZero() bool { return pid.p == nil }

// ID returns the actor's id, unique within its System. Zero for the zero PID.
func (pid PID) ID() uint64 {
	if pid.p == nil {
		return 0
	}
	return pid.p.id
}

// Name returns the name the actor was spawned with, or "".
func (pid PID) Name() string {
	if pid.p == nil {
		return ""
	}
	return pid.p.name
}

// System returns the name of the System that hosts the actor, or "".
func (pid PID) System() string {
	if pid.p == nil {
		return ""
	}
	return pid.p.sys.name
}

// String formats pid as "system/name" for named actors and "system/$id"
// otherwise; the zero PID prints as "<nil>".
func (pid PID) String() string {
	if pid.p == nil {
		return "<nil>"
	}
	if pid.p.name != "" {
		return pid.p.sys.name + "/" + pid.p.name
	}
	return pid.p.sys.name + "/$" + strconv.FormatUint(pid.p.id, 10)
}
