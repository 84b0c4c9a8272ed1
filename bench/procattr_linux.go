package main

import "syscall"

// procAttr makes the kernel kill a worker when the suite dies, as a
// backstop to the suite's own clean-up (kill -9 of the suite included).
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
