// The Go peer of B8: an echo server as Go programmers write it, a
// goroutine per connection in a read / write loop over net.TCPConn (the
// runtime's netpoller multiplexes them on epoll). Built and started by
// bench/bench_io_echo (through bench/io_peers.sh):
//
//	goecho PORT        listens on 127.0.0.1:PORT until SIGTERM
//
// GOMAXPROCS is the runtime's default: one P per CPU the process may run
// on (bench_io_echo pins every server to one CPU, so one P).
package main

import (
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"
)

func serve(c net.Conn) {
	defer c.Close()
	buf := make([]byte, 16384)
	for {
		n, err := c.Read(buf)
		if err != nil {
			return
		}
		if _, err := c.Write(buf[:n]); err != nil {
			return
		}
	}
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: goecho PORT")
		os.Exit(2)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:"+os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "goecho:", err)
		os.Exit(1)
	}
	go func() {
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, syscall.SIGTERM, syscall.SIGINT)
		<-ch
		os.Exit(0)
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			continue
		}
		go serve(c)
	}
}
