"""CPython's concurrent.futures on the workloads of `examples/compare`.

Run by `cargo run --release --example compare` when python3 is on the PATH; also runnable by
hand: `python3 benches/peers/cpython.py`. Prints one line per workload:
`<workload>\t<median seconds>\t<items>`, the median over several repetitions, with names as
in the compare table. CPU-bound work runs on ProcessPoolExecutor (the GIL would serialize it
on threads); everything else on ThreadPoolExecutor. Workloads whose full size would take
CPython too long run on fewer items; `items` says how many, so per-item costs compare.
"""

import concurrent.futures as cf
import statistics
import sys
import time

WORKERS = 2


def trivial(x):
    return x


def spin(_):
    # About 10 ms of pure CPU work, calibrated below.
    n = 0
    for i in range(SPIN_ITERATIONS):
        n += i
    return n


def calibrate():
    iterations = 100_000
    start = time.perf_counter()
    n = 0
    for i in range(iterations):
        n += i
    per_iteration = (time.perf_counter() - start) / iterations
    return max(1, int(0.010 / per_iteration))


SPIN_ITERATIONS = calibrate()


def median_time(run, reps):
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def round_trip(ex, ops):
    for _ in range(ops):
        ex.submit(trivial, 1).result()


def gather(ex, tasks):
    futures = [ex.submit(trivial, i) for i in range(tasks)]
    for f in futures:
        f.result()


def main():
    out = []
    with cf.ThreadPoolExecutor(WORKERS) as ex:
        ex.submit(trivial, 0).result()
        ops = 2_000
        out.append(("round trip", median_time(lambda: round_trip(ex, ops), 5) / ops, 1))
        tasks = 10_000
        out.append(("gather 10k", median_time(lambda: gather(ex, tasks), 3), tasks))
        items = 100_000
        out.append(("par_map 1M trivial", median_time(lambda: list(ex.map(trivial, range(items))), 3), items))
    with cf.ProcessPoolExecutor(WORKERS) as ex:
        list(ex.map(trivial, range(WORKERS)))
        out.append(("cpu 32x10ms", median_time(lambda: list(ex.map(spin, range(32))), 3), 32))
    with cf.ThreadPoolExecutor(50) as ex:
        out.append(("io 200x10ms", median_time(lambda: list(ex.map(time.sleep, [0.01] * 200)), 3), 200))
    for workload, seconds, n in out:
        print(f"{workload}\t{seconds:.9f}\t{n}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
