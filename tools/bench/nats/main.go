// nats-bench — the NATS side of tools/bench (issue 19): the same echo calls muster-bench makes,
// through Debian's nats-server and responders on nats.go, so muster, the bare forwarder and NATS
// are measured in one run of tools/bench/run.sh.
//
//	nats-bench matrix [-server /usr/sbin/nats-server] [-payload 64,4096] [-responders 1,2] [-depth 32,256]
//	nats-bench responder -url nats://127.0.0.1:PORT     (started by matrix, one process each)
//
// matrix starts nats-server on a free loopback port and, per cell, N responder processes (a
// queue group "echo" answering each request with its own bytes), then calls from this process:
// one call at a time (nc.Request: p50/p99 and calls/s) and pipelined (D requests in flight on one
// connection, replies to a wildcard inbox, each reply sending the next request: calls/s). It
// prints one line per cell and the CPU time per call of the server, the responders and the
// client (from /proc/PID/stat). Must never: be run by the tests (timings depend on the machine).
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
)

const subject = "echo"

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: nats-bench matrix|responder [flags]")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "responder":
		responder(os.Args[2:])
	case "matrix":
		matrix(os.Args[2:])
	default:
		fmt.Fprintf(os.Stderr, "nats-bench: unknown command %q\n", os.Args[1])
		os.Exit(2)
	}
}

func die(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "nats-bench: "+format+"\n", args...)
	os.Exit(1)
}

// responder answers every request on "echo" (queue group "echo") with its own bytes.
func responder(args []string) {
	fs := flag.NewFlagSet("responder", flag.ExitOnError)
	url := fs.String("url", "", "nats:// URL of the server")
	fs.Parse(args)
	nc, err := nats.Connect(*url)
	if err != nil {
		die("responder: %v", err)
	}
	_, err = nc.QueueSubscribe(subject, "echo", func(m *nats.Msg) { m.Respond(m.Data) })
	if err != nil {
		die("responder: %v", err)
	}
	nc.Flush()
	fmt.Println("ready")
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	nc.Drain()
}

// cpuSeconds is utime+stime of a process, all threads.
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	u, _ := strconv.ParseFloat(f[11], 64)
	k, _ := strconv.ParseFloat(f[12], 64)
	return (u + k) / 100 // USER_HZ
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		die("%v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func ints(s string) []int {
	var out []int
	for _, p := range strings.Split(s, ",") {
		p = strings.TrimSpace(strings.ToLower(p))
		mul := 1
		switch {
		case strings.HasSuffix(p, "kib"), strings.HasSuffix(p, "k"):
			mul, p = 1024, strings.TrimRight(p, "kib")
		case strings.HasSuffix(p, "mib"), strings.HasSuffix(p, "m"):
			mul, p = 1024*1024, strings.TrimRight(p, "mib")
		}
		v, err := strconv.Atoi(p)
		if err != nil {
			die("not a number: %q", p)
		}
		out = append(out, v*mul)
	}
	return out
}

func size(n int) string {
	switch {
	case n >= 1024*1024 && n%(1024*1024) == 0:
		return fmt.Sprintf("%d MiB", n/(1024*1024))
	case n >= 1024 && n%1024 == 0:
		return fmt.Sprintf("%d KiB", n/1024)
	}
	return fmt.Sprintf("%d B", n)
}

func percentile(v []time.Duration, p float64) float64 {
	if len(v) == 0 {
		return 0
	}
	sort.Slice(v, func(i, j int) bool { return v[i] < v[j] })
	return float64(v[int(p*float64(len(v)-1))].Microseconds())
}

type cell struct {
	callsPerSec, p50, p99 float64
}

// oneAtATime: nc.Request in a loop.
func oneAtATime(nc *nats.Conn, data []byte, warmup, dur time.Duration) cell {
	var lat []time.Duration
	start := time.Now()
	var measured time.Time
	n := 0
	for {
		now := time.Now()
		if now.Sub(start) > warmup+dur {
			break
		}
		t0 := time.Now()
		m, err := nc.Request(subject, data, 10*time.Second)
		if err != nil || len(m.Data) != len(data) {
			die("request failed: %v", err)
		}
		if now.Sub(start) >= warmup {
			if measured.IsZero() {
				measured = t0
			}
			lat = append(lat, time.Since(t0))
			n++
		}
	}
	el := time.Since(measured).Seconds()
	return cell{float64(n) / el, percentile(lat, 0.5), percentile(lat, 0.99)}
}

// pipelined: depth requests in flight on one connection; each reply sends the next request.
func pipelined(nc *nats.Conn, data []byte, depth int, warmup, dur time.Duration) cell {
	inbox := nats.NewInbox()
	var mu sync.Mutex
	sentAt := map[string]time.Time{}
	var lat []time.Duration
	var done, seq int
	measuring, stop := false, false
	var bad error
	next := func() {
		seq++
		reply := inbox + "." + strconv.Itoa(seq)
		sentAt[reply] = time.Now()
		if err := nc.PublishRequest(subject, reply, data); err != nil && bad == nil {
			bad = err
		}
	}
	finished := make(chan struct{})
	sub, err := nc.Subscribe(inbox+".*", func(m *nats.Msg) {
		mu.Lock()
		defer mu.Unlock()
		t0, ok := sentAt[m.Subject]
		if !ok {
			return
		}
		delete(sentAt, m.Subject)
		if len(m.Data) != len(data) && bad == nil {
			bad = fmt.Errorf("a reply of %d bytes, expected %d", len(m.Data), len(data))
		}
		if measuring {
			done++
			lat = append(lat, time.Since(t0))
		}
		if !stop {
			next()
		} else if len(sentAt) == 0 {
			close(finished)
		}
	})
	if err != nil {
		die("%v", err)
	}
	sub.SetPendingLimits(-1, -1)
	defer sub.Unsubscribe()
	mu.Lock()
	for i := 0; i < depth; i++ {
		next()
	}
	mu.Unlock()
	nc.Flush()
	time.Sleep(warmup)
	mu.Lock()
	measuring, done, lat = true, 0, lat[:0]
	t0 := time.Now()
	mu.Unlock()
	time.Sleep(dur)
	mu.Lock()
	n, el := done, time.Since(t0).Seconds()
	l := append([]time.Duration(nil), lat...)
	stop = true
	measuring = false
	mu.Unlock()
	select {
	case <-finished:
	case <-time.After(30 * time.Second):
		die("pipelined: replies missing after 30 s")
	}
	if bad != nil {
		die("pipelined: %v", bad)
	}
	return cell{float64(n) / el, percentile(l, 0.5), percentile(l, 0.99)}
}

func matrix(args []string) {
	fs := flag.NewFlagSet("matrix", flag.ExitOnError)
	server := fs.String("server", "/usr/sbin/nats-server", "the nats-server binary")
	payloads := fs.String("payload", "64,4KiB", "payload sizes")
	responders := fs.String("responders", "1,2", "responder processes per cell")
	depths := fs.String("depth", "32,256", "calls in flight, pipelined")
	duration := fs.Duration("duration", 2*time.Second, "measured time per cell")
	warmup := fs.Duration("warmup", 500*time.Millisecond, "warm-up per cell")
	fs.Parse(args)

	port := freePort()
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	srv := exec.Command(*server, "-a", "127.0.0.1", "-p", strconv.Itoa(port)) // default max payload: 1 MiB
	srv.Stdout, srv.Stderr = nil, nil
	if err := srv.Start(); err != nil {
		die("cannot start %s: %v", *server, err)
	}
	defer func() { srv.Process.Signal(syscall.SIGTERM); srv.Wait() }()
	var nc *nats.Conn
	var err error
	for i := 0; i < 100; i++ {
		if nc, err = nats.Connect(url); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		die("nats-server not reachable: %v", err)
	}
	defer nc.Close()
	self, _ := os.Executable()
	self, _ = filepath.Abs(self)

	fmt.Printf("NATS (%s, nats.go %s), tcp loopback, responders on nats.go in a queue group\n", *server, nats.Version)
	fmt.Printf("%-7s %-10s %-14s %10s %9s %9s   %s\n", "payload", "responders", "mode", "calls/s", "p50 us", "p99 us",
		"cpu us/call (server/responders/client)")
	for _, r := range ints(*responders) {
		var procs []*exec.Cmd
		for i := 0; i < r; i++ {
			c := exec.Command(self, "responder", "-url", url)
			out, _ := c.StdoutPipe()
			if err := c.Start(); err != nil {
				die("%v", err)
			}
			buf := make([]byte, 6)
			if _, err := out.Read(buf); err != nil {
				die("responder did not start: %v", err)
			}
			procs = append(procs, c)
		}
		cpu := func() (float64, float64, float64) {
			var w float64
			for _, p := range procs {
				w += cpuSeconds(p.Process.Pid)
			}
			return cpuSeconds(srv.Process.Pid), w, cpuSeconds(os.Getpid())
		}
		for _, p := range ints(*payloads) {
			data := make([]byte, p)
			for i := range data {
				data[i] = 0x5a
			}
			report := func(mode string, run func() cell) {
				s0, w0, c0 := cpu()
				c := run()
				s1, w1, c1 := cpu()
				calls := c.callsPerSec * (duration.Seconds() + warmup.Seconds())
				fmt.Printf("%-7s %-10d %-14s %10.0f %9.1f %9.1f   %.0f/%.0f/%.0f\n", size(p), r, mode, c.callsPerSec, c.p50, c.p99,
					(s1-s0)*1e6/calls, (w1-w0)*1e6/calls, (c1-c0)*1e6/calls)
			}
			report("1-at-a-time", func() cell { return oneAtATime(nc, data, *warmup, *duration) })
			for _, d := range ints(*depths) {
				report(fmt.Sprintf("pipelined x%d", d), func() cell { return pipelined(nc, data, d, *warmup, *duration) })
			}
		}
		for _, c := range procs {
			c.Process.Signal(syscall.SIGTERM)
			c.Wait()
		}
	}
}
