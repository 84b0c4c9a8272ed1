package main

import "syscall"

// procAttr makes the kernel kill a child when the launcher dies.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
