//go:build !linux

package main

import "syscall"

// procAttr has no parent-death signal outside Linux; workers also exit when
// their stdin closes, which happens when the suite dies.
func procAttr() *syscall.SysProcAttr { return nil }
