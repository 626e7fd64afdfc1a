// Command pause is the test bed's stand-in for registry.k8s.io/pause: the
// process that holds a pod sandbox's namespaces. It sleeps until SIGINT or
// SIGTERM and, as PID 1 of a pod that shares its PID namespace, reaps the
// zombies that are re-parented to it.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 4)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for sig := range signals {
		if sig != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var status syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
