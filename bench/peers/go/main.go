// The Go peer of coro's benchmarks (bench/README.md): B1-B6 written the way
// Go programmers write them, printing the RESULT protocol of bench/bench.h.
//
//	gobench            every benchmark (run by bench/peers/go/run.sh)
//	gobench memchild SHAPE N   (internal) one memory measurement in a fresh
//	                   process: a Go process never gives its stacks back, so
//	                   every Rss delta is taken in a process of its own
//
// Environment: BENCH_RUNS (>= 5), BENCH_SCALE, BENCH_PROFILE=full.
//
// GOMAXPROCS: B1 runs with GOMAXPROCS=1, because a switch between two
// goroutines only happens when they share one P (with two Ps each runs on
// its own thread and Gosched returns to itself). Every other CPU benchmark
// is measured with GOMAXPROCS=1 and with the default (one P per CPU), and
// the faster median is reported (procs= in the details): the peer gets its
// better configuration; coro is single-threaded.
package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

var sink int

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

func runs() int {
	n := envInt("BENCH_RUNS", 5)
	if n < 5 {
		n = 5
	}
	return n
}

func full() bool { return os.Getenv("BENCH_PROFILE") == "full" }

// size: the quick or full default, scaled by BENCH_SCALE.
func size(quick, fullN int) int {
	n := quick
	if full() {
		n = fullN
	}
	if f, err := strconv.ParseFloat(os.Getenv("BENCH_SCALE"), 64); err == nil && f > 0 {
		n = int(float64(n) * f)
	}
	if n < 1 {
		n = 1
	}
	return n
}

func progress(format string, a ...interface{}) {
	fmt.Fprintf(os.Stderr, "  .. "+format+"\n", a...)
}

type stats struct{ median, min, max, q1, q3 float64 }

func quantile(s []float64, q float64) float64 {
	pos := q * float64(len(s)-1)
	i := int(pos)
	if i >= len(s)-1 {
		return s[len(s)-1]
	}
	return s[i] + (pos-float64(i))*(s[i+1]-s[i])
}

func statsOf(v []float64) stats {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return stats{quantile(s, 0.5), s[0], s[len(s)-1], quantile(s, 0.25), quantile(s, 0.75)}
}

func report(bench, unit string, v []float64, extra string) {
	st := statsOf(v)
	fmt.Printf("%-14s go         median %12.3f %-10s  min %.3f  max %.3f  (%d runs)\n",
		bench, st.median, unit, st.min, st.max, len(v))
	fmt.Printf("RESULT bench=%s impl=go unit=%s value=%.6g spread=%.6g spread_kind=range runs=%d min=%.6g max=%.6g iqr=%.6g %s\n",
		bench, unit, st.median, st.max-st.min, len(v), st.min, st.max, st.q3-st.q1, extra)
}

// measure runs f (returning ns/op) once to warm up, then `runs` times, with
// each GOMAXPROCS setting in procs; reports the setting with the lower median.
func measure(bench string, procs []int, extra string, f func() float64) {
	best, bestP := []float64(nil), 0
	for _, p := range procs {
		runtime.GOMAXPROCS(p)
		f()
		v := make([]float64, runs())
		for r := range v {
			progress("%s GOMAXPROCS=%d run %d/%d", bench, p, r+1, len(v))
			runtime.GC()
			v[r] = f()
		}
		if best == nil || statsOf(v).median < statsOf(best).median {
			best, bestP = v, p
		}
		fmt.Printf("   %s with GOMAXPROCS=%d: median %.1f ns/op\n", bench, p, statsOf(v).median)
	}
	runtime.GOMAXPROCS(runtime.NumCPU())
	report(bench, "ns/op", best, fmt.Sprintf("%s procs=%d", extra, bestP))
}

func since(t time.Time) float64 { return float64(time.Since(t).Nanoseconds()) }

// B1: two goroutines yield to each other with runtime.Gosched.
func switchBench(n int) float64 {
	var wg sync.WaitGroup
	wg.Add(2)
	start := time.Now()
	for k := 0; k < 2; k++ {
		go func() {
			for i := 0; i < n; i++ {
				runtime.Gosched()
			}
			wg.Done()
		}()
	}
	wg.Wait()
	return since(start) / float64(2*n)
}

// B2: go + finish of an empty goroutine, waited for in batches (as coro's).
func spawnBench(n, batch int) float64 {
	var wg sync.WaitGroup
	start := time.Now()
	for done := 0; done < n; done += batch {
		wg.Add(batch)
		for i := 0; i < batch; i++ {
			go wg.Done()
		}
		wg.Wait()
	}
	return since(start) / float64(n)
}

// B3: ping-pong over two unbuffered channels; ns per message.
func queueBench(n int) float64 {
	there, back := make(chan int), make(chan int)
	go func() {
		for i := 0; i < n; i++ {
			back <- <-there
		}
	}()
	start := time.Now()
	for i := 0; i < n; i++ {
		there <- i
		if <-back != i {
			panic("queue ping-pong went wrong")
		}
	}
	return since(start) / float64(2*n)
}

// B4: whispers (the classic Go program): a chain of n goroutines linked by
// unbuffered channels; ns per goroutine, creation included.
func whisper(left, right chan int) { left <- 1 + <-right }

func ringBench(n int) float64 {
	start := time.Now()
	leftmost := make(chan int)
	right, left := leftmost, leftmost
	for i := 0; i < n; i++ {
		right = make(chan int)
		go whisper(left, right)
		left = right
	}
	go func(c chan int) { c <- 1 }(right)
	if v := <-leftmost; v != n+1 {
		panic("whispers went wrong")
	}
	return since(start) / float64(n)
}

// B5: deadlines uniformly over 10 ms (xorshift64*, as bench_timers.c).
const window = 10 * time.Millisecond

func delays(n int) []time.Duration {
	rng := uint64(0x9E3779B97F4A7C15)
	d := make([]time.Duration, n)
	for i := range d {
		rng ^= rng >> 12
		rng ^= rng << 25
		rng ^= rng >> 27
		d[i] = time.Duration((rng * 0x2545F4914F6CDD1D >> 11) % uint64(window))
	}
	return d
}

// B5 timers: time.AfterFunc for each deadline; ns per timer, arm to last fire.
func timersBench(d []time.Duration) float64 {
	var wg sync.WaitGroup
	wg.Add(len(d))
	done := wg.Done
	start := time.Now()
	for _, x := range d {
		time.AfterFunc(x, done)
	}
	wg.Wait()
	return since(start) / float64(len(d))
}

// B5 sleeping tasks: a goroutine per deadline in time.Sleep.
func sleepersBench(d []time.Duration) float64 {
	var wg sync.WaitGroup
	wg.Add(len(d))
	start := time.Now()
	for _, x := range d {
		go func(x time.Duration) {
			time.Sleep(x)
			wg.Done()
		}(x)
	}
	wg.Wait()
	return since(start) / float64(len(d))
}

// procField reads "<key> <n> kB" from a /proc file, in bytes (-1: absent).
func procField(path, key string) int64 {
	f, err := os.Open(path)
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), key) {
			kb, _ := strconv.ParseInt(strings.Fields(sc.Text())[1], 10, 64)
			return kb * 1024
		}
	}
	return -1
}

// B6: Rss from /proc/self/smaps_rollup (as bench.h's bench_rss).
func rss() int64 { return procField("/proc/self/smaps_rollup", "Rss:") }

// The page tables of this process (memory_total, as bench_memory.c).
func vmPTE() int64 { return procField("/proc/self/status", "VmPTE:") }

func memAvailable() int64 { return procField("/proc/meminfo", "MemAvailable:") }

// memChild parks n goroutines (on a gate channel, or in time.Sleep(1h)) and
// prints the Rss delta per goroutine.
func memChild(shape string, n int) {
	gate := make(chan struct{})
	var parked, finished sync.WaitGroup
	parked.Add(n)
	finished.Add(n)
	pte0, before := vmPTE(), rss()
	for i := 0; i < n; i++ {
		if shape == "gate" {
			go func() {
				parked.Done()
				<-gate
				finished.Done()
			}()
		} else {
			go func() {
				parked.Done()
				time.Sleep(time.Hour)
			}()
		}
	}
	parked.Wait()
	runtime.Gosched()
	after, pte1 := rss(), vmPTE()
	fmt.Printf("%.2f %.2f\n", float64(after-before)/float64(n), float64(pte1-pte0)/float64(n))
	if shape == "gate" {
		close(gate)
		finished.Wait()
	}
}

// memRun runs one memChild in a fresh process; Rss and page-table bytes per
// goroutine.
func memRun(shape string, n int) (float64, float64) {
	out, err := exec.Command(os.Args[0], "memchild", shape, strconv.Itoa(n)).Output()
	f := strings.Fields(string(out))
	if err != nil || len(f) != 2 {
		fmt.Fprintf(os.Stderr, "gobench: memchild %s %d: %v\n", shape, n, err)
		os.Exit(1)
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	pte, _ := strconv.ParseFloat(f[1], 64)
	return v, pte
}

func memory() {
	n := size(100000, 1000000)
	total := make([]float64, runs())
	for _, shape := range []string{"sleep", "gate"} {
		v := make([]float64, runs())
		for r := range v {
			progress("memory_%s run %d/%d (%d goroutines)", shape, r+1, len(v), n)
			var pte float64
			v[r], pte = memRun(shape, n)
			total[r] = v[r] + pte
		}
		report("memory_"+shape, "bytes/task", v, fmt.Sprintf("n=%d", n))
	}
	report("memory_total", "bytes/task", total, fmt.Sprintf("n=%d note=Rss+VmPTE", n))
	// The scaling chart, then the largest count: steps while the next one
	// is predicted to take less than half of MemAvailable (the machine is
	// shared: the peer is not run into the OOM killer).
	largest, per := 0, 0.0
	top := size(1000000, 100000000)
	for c := 1000; c <= top; c *= 10 {
		if per > 0 && per*float64(c) > 0.5*float64(memAvailable()) {
			break
		}
		progress("memory scaling: %d goroutines", c)
		per, _ = memRun("gate", c)
		largest = c
		fmt.Printf("POINT chart=memory impl=go x=%d y=%.6g\n", c, per*float64(c))
	}
	if full() {
		for c := largest * 2; per*float64(c) < 0.5*float64(memAvailable()); c *= 2 {
			progress("memory_max: %d goroutines", c)
			per, _ = memRun("gate", c)
			largest = c
			fmt.Printf("POINT chart=memory impl=go x=%d y=%.6g\n", c, per*float64(c))
		}
	}
	v := make([]float64, runs())
	for r := range v {
		v[r] = float64(largest)
	}
	report("memory_max", "tasks", v, fmt.Sprintf("better=higher bound=lower n=%d fits_est=%.3g "+
		"note=stopped_below_half_of_MemAvailable", largest, float64(memAvailable())/per))
}

func main() {
	if len(os.Args) == 4 && os.Args[1] == "memchild" {
		n, _ := strconv.Atoi(os.Args[3])
		memChild(os.Args[2], n)
		return
	}
	fmt.Printf("== go: %s, GOMAXPROCS default %d, %d runs\n", runtime.Version(), runtime.NumCPU(), runs())
	both := []int{1, runtime.NumCPU()}
	if runtime.NumCPU() == 1 {
		both = []int{1}
	}
	nsw := size(1000000, 5000000)
	measure("switch", []int{1}, fmt.Sprintf("n=%d api=runtime.Gosched", 2*nsw),
		func() float64 { return switchBench(nsw) })
	nsp := size(1000000, 2000000)
	measure("spawn", both, fmt.Sprintf("n=%d batch=1000 api=go+WaitGroup", nsp),
		func() float64 { return spawnBench(nsp, 1000) })
	nq := size(500000, 2000000)
	measure("queue", both, fmt.Sprintf("n=%d api=unbuffered_chan", nq),
		func() float64 { return queueBench(nq) })
	nr := size(100000, 1000000)
	measure("ring", both, fmt.Sprintf("n=%d api=unbuffered_chan", nr),
		func() float64 { return ringBench(nr) })
	d := delays(size(200000, 1000000))
	measure("timers", both, fmt.Sprintf("n=%d api=time.AfterFunc", len(d)),
		func() float64 { return timersBench(d) })
	ds := delays(size(100000, 1000000))
	measure("timers_sleep", both, fmt.Sprintf("n=%d api=time.Sleep", len(ds)),
		func() float64 { return sleepersBench(ds) })
	memory()
}
