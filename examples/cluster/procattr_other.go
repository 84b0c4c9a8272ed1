//go:build !linux

package main

import "syscall"

// procAttr has no parent-death signal outside Linux; children also leave
// when their stdin closes, which happens when the launcher dies.
func procAttr() *syscall.SysProcAttr { return nil }
