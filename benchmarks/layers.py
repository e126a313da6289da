"""One training step (forward + backward) of SimpleRNN, LSTM and GRU over a sweep of lengths:
ours, ours with checkpointing, Keras and a GEMM floor, time and peak memory, in one run.

    python benchmarks/layers.py                          # B=64, D=H=256, T=50..1600, float32
    python benchmarks/layers.py --steps 100 400 --cells lstm --repeats 20
    python benchmarks/layers.py --steps 100 400 --no-sweep-memory --xla   # + XLA-compiled loops
    python benchmarks/layers.py --steps 100 400 --dtype-policy float32 mixed_bfloat16

Variants, with the same weights:
  * ours      — `seqapps.layers.X` (fused path: hand-written BPTT, chunks of 32 steps; cuDNN on GPU)
  * ckpt      — the same with `checkpoint_every=K`, K = ceil(sqrt(T)) unless `--checkpoint-every`
                (states kept every K steps, each segment recomputed in the backward pass)
  * ours+xla  — with `--xla`: the loops compiled by XLA (`compiled_loops(True)`)
  * keras     — `keras.layers.X` with our weights copied in (cuDNN on GPU for LSTM/GRU)
  * floor     — only the matrix products any implementation must do, with distinct operands
                (TF's optimizer merges identical ops): the input projection, T sequential
                recurrent products, and their backward counterparts (dX, dW, dU as large
                matmuls, T sequential dh products).
Time: median of `--repeats` steps, ms and ms per step of T. Peak memory: one fresh subprocess
per variant and length; the allocator's peak of tensor bytes during one (already traced) step,
above the inputs and weights alive before it (`tf.config.experimental.get_memory_info`; on CPU
with TF's BFC allocator switched on for that process), MiB and KiB per step of T. From the
memory sweep, a straight-line fit per variant gives the longest T whose step fits in
`--budget-gib` (measured where the sweep reaches it, extrapolated beyond).
Targets (issue #18, float32, 2 CPU cores): at T=400 ours <= 0.75x Keras' memory for LSTM and
GRU, ckpt <= 0.3x; time <= 1.5x the floor for all three cells; cost linear in T.
"""

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

GATES = {"simple_rnn": 1, "lstm": 4, "gru": 3}
KERAS_NAMES = {"simple_rnn": "SimpleRNN", "lstm": "LSTM", "gru": "GRU"}
SWEEP = [50, 100, 200, 400, 800, 1600]


def checkpoint_interval(steps, every=None):
    """K of the checkpointed variant: O(T/K + K) steps are held, least at K = sqrt(T)."""
    return every or math.ceil(math.sqrt(steps))


def build_step(variant, cell, batch, steps, dim, units, checkpoint_every=None):
    import keras
    import numpy as np
    import tensorflow as tf

    import seqapps.layers

    keras.mixed_precision.set_global_policy(os.environ.get("BENCH_DTYPE_POLICY", "float32"))
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(batch, steps, dim)).astype("float32"))
    if variant == "floor":
        compute = keras.mixed_precision.global_policy().compute_dtype
        return floor_step(cell, tf.cast(x, compute), units), tf.cast(x, compute)
    name = KERAS_NAMES[cell]
    if variant == "keras":
        layer = getattr(keras.layers, name)(units, return_sequences=True)
    else:
        # Only the ckpt variant names the argument: `ours` then also builds with a release of
        # seqapps.layers from before it existed (for before/after figures, PYTHONPATH=old tree).
        every = {"checkpoint_every": checkpoint_interval(steps, checkpoint_every)} if variant == "ckpt" else {}
        layer = getattr(seqapps.layers, name)(units, return_sequences=True, **every)
    layer.build((batch, steps, dim))
    reference = getattr(keras.layers, name)(units, return_sequences=True)
    reference.build((batch, steps, dim))
    layer.set_weights(reference.get_weights())  # same weights for every variant
    weights = layer.trainable_weights
    compiled = variant == "ours+xla"

    @tf.function
    def step(x):
        with seqapps.layers.compiled_loops(compiled), tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(tf.square(layer(x)))
        return tape.gradient(loss, [x] + weights)

    return step, x


def floor_step(cell, x, units):
    """The matmuls of one forward+backward pass, no gate arithmetic, distinct operands."""
    import tensorflow as tf

    batch, steps, dim = x.shape
    g = GATES[cell] * units
    w = tf.cast(tf.random.normal([dim, g], seed=1), x.dtype)
    u_fwd = tf.cast(tf.random.normal([units, g], seed=2) * 0.01, x.dtype)
    u_bwd = tf.cast(tf.random.normal([g, units], seed=3) * 0.01, x.dtype)
    d_out = tf.cast(tf.random.normal([steps * batch, g], seed=4), x.dtype)

    @tf.function
    def step(x):
        flat_x = tf.reshape(x, [-1, dim])
        xw = tf.reshape(tf.matmul(flat_x, w), [steps, batch, g])  # input projection

        def fwd(t, h, acc):
            z = xw[t] + tf.matmul(h, u_fwd)
            return t + 1, z[:, :units], acc + z[:, :1]

        _, h, acc = tf.while_loop(
            lambda t, *_: t < steps, fwd,
            (0, tf.zeros([batch, units], x.dtype), tf.zeros([batch, 1], x.dtype)),
        )

        def bwd(t, dh):
            return t - 1, tf.matmul(d_out[t * batch : (t + 1) * batch] + dh[:, :1], u_bwd)

        _, dh = tf.while_loop(lambda t, *_: t >= 0, bwd, (steps - 1, tf.zeros([batch, units], x.dtype)))
        d_x = tf.matmul(d_out, w, transpose_b=True)  # dX
        d_w = tf.matmul(flat_x, d_out, transpose_a=True)  # dW
        h_all = tf.reshape(tf.tile(h, [steps, 1]), [steps * batch, units])
        d_u = tf.matmul(h_all, d_out, transpose_a=True)  # dU
        return d_x, d_w, d_u, acc, dh

    return step


def time_step(step, x, repeats):
    out = step(x)  # trace + warm up
    [o.numpy() for o in out]
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = step(x)
        [o.numpy() for o in out]
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def peak_memory_child(variant, cell, batch, steps, dim, units, checkpoint_every):
    """Runs in a subprocess: prints the peak memory of one training step, in MiB.

    On CPU the process runs TF's BFC allocator (TF_CPU_ALLOCATOR_USE_BFC, set by
    measure_peak), whose peak counter gives the bytes of tensors alive at once during the
    step, above what was alive before it (x and the weights, the same for every variant).
    The step is traced and run once before, so tracing is not counted. Peak RSS above the
    process before the step is printed beside it (what the OS sees; the allocator keeps freed
    memory, so it is an upper bound).
    """
    import resource
    import threading

    import tensorflow as tf

    step, x = build_step(variant, cell, batch, steps, dim, units, checkpoint_every or None)
    gpu = bool(tf.config.list_physical_devices("GPU"))
    device = "GPU:0" if gpu else "CPU:0"
    [o.numpy() for o in step(x)]  # trace and warm up

    def rss_mib():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * resource.getpagesize() / 2**20

    baseline, peak_rss, done = rss_mib(), [0.0], threading.Event()

    def sample():
        while not done.is_set():
            peak_rss[0] = max(peak_rss[0], rss_mib())
            time.sleep(0.0005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    tf.config.experimental.reset_memory_stats(device)
    before = tf.config.experimental.get_memory_info(device)["current"]
    [o.numpy() for o in step(x)]
    peak = (tf.config.experimental.get_memory_info(device)["peak"] - before) / 2**20
    done.set()
    sampler.join()
    print(json.dumps({"peak_mib": peak, "rss_mib": peak_rss[0] - baseline, "device": device}))


def measure_peak(variant, cell, batch, steps, dim, units, checkpoint_every=None):
    cmd = [sys.executable, __file__, "--child", variant, cell, str(batch), str(steps), str(dim),
           str(units), str(checkpoint_every or 0)]
    env = {**os.environ, "TF_CPU_ALLOCATOR_USE_BFC": "true"}  # a CPU allocator with a peak counter
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])["peak_mib"]


def longest_fitting(points, budget_mib):
    """(T, extrapolated?) of the longest step under budget_mib from a least-squares line
    through (T, MiB) points; None when memory does not grow with T."""
    ts, ms = zip(*points)
    mean_t, mean_m = statistics.fmean(ts), statistics.fmean(ms)
    var = sum((t - mean_t) ** 2 for t in ts)
    slope = sum((t - mean_t) * (m - mean_m) for t, m in zip(ts, ms)) / var if var else 0.0
    if slope <= 0:
        return None
    t_max = int((budget_mib - (mean_m - slope * mean_t)) / slope)
    return t_max, t_max > max(ts)


def print_time_header(variants):
    print(f"{'cell':<11}{'T':>5}{'policy':>15}" + "".join(f"{v + ' ms':>11}" for v in variants)
          + f"{'ours/keras':>11}{'ours/floor':>11}{'ckpt/floor':>11}{'ours ms/T':>10}")


def print_time_row(row, variants):
    ms = row["ms"]
    print(f"{row['cell']:<11}{row['steps']:>5}{row['policy']:>15}"
          + "".join(f"{ms[v]:>11.1f}" for v in variants)
          + f"{ms['ours'] / ms['keras']:>11.2f}{ms['ours'] / ms['floor']:>11.2f}"
          f"{ms['ckpt'] / ms['floor']:>11.2f}{ms['ours'] / row['steps']:>10.3f}", flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cells", nargs="+", default=["lstm", "gru", "simple_rnn"], choices=list(GATES))
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--units", type=int, default=256)
    parser.add_argument("--steps", type=int, nargs="+", default=SWEEP,
                        help=f"lengths T to time and measure (default {' '.join(map(str, SWEEP))})")
    parser.add_argument("--repeats", type=int, default=7, help="timed steps per row; the median is shown")
    parser.add_argument("--checkpoint-every", type=int, default=None,
                        help="K of the checkpointed variant (default ceil(sqrt(T)) for each T)")
    parser.add_argument("--xla", action="store_true", help="also time the XLA-compiled loops")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    parser.add_argument("--no-sweep-memory", action="store_true",
                        help="measure memory at the longest T only (not at every T)")
    parser.add_argument("--budget-gib", type=float, default=4.0,
                        help="memory budget for the longest-T estimate (default 4 GiB)")
    parser.add_argument("--dtype-policy", nargs="+", default=["float32"],
                        choices=["float32", "mixed_bfloat16", "mixed_float16"],
                        help="Keras dtype policies to time every variant under (default float32)")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    parser.add_argument("--child", nargs=7, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        variant, cell, *nums = args.child
        return peak_memory_child(variant, cell, *map(int, nums))

    import tensorflow as tf

    # Every row builds new tf.functions on purpose; TF's retracing warning says nothing here.
    tf.get_logger().setLevel("ERROR")
    device = "GPU" if tf.config.list_physical_devices("GPU") else f"CPU ({os.cpu_count()} cores)"
    print(f"device: {device}; B={args.batch} D={args.dim} H={args.units}; median of {args.repeats}; "
          f"ckpt K = {args.checkpoint_every or 'ceil(sqrt(T))'}")
    variants = ["ours", "ckpt"] + (["ours+xla"] if args.xla else []) + ["keras", "floor"]
    print_time_header(variants)
    results = []
    for cell in args.cells:
        for steps, policy in [(s, p) for s in args.steps for p in args.dtype_policy]:
            os.environ["BENCH_DTYPE_POLICY"] = policy  # read by build_step (and the memory child)
            ms = {}
            for variant in variants:
                step, x = build_step(variant, cell, args.batch, steps, args.dim, args.units,
                                     args.checkpoint_every)
                ms[variant] = 1000 * time_step(step, x, args.repeats)
            results.append(dict(cell=cell, steps=steps, policy=policy, ms=ms,
                                checkpoint_every=checkpoint_interval(steps, args.checkpoint_every)))
            print_time_row(results[-1], variants)
    memory = []
    if not args.no_memory:
        os.environ["BENCH_DTYPE_POLICY"] = args.dtype_policy[0]
        lengths = [max(args.steps)] if args.no_sweep_memory else sorted(args.steps)
        budget = args.budget_gib * 1024
        print(f"\npeak memory of one training step, {args.dtype_policy[0]} (MiB; KiB per step of T)")
        print(f"{'cell':<11}{'T':>5}" + "".join(f"{v:>9}" for v in ("ours", "ckpt", "keras", "floor"))
              + f"{'ours/keras':>11}{'ckpt/keras':>11}{'ours KiB/T':>11}{'keras KiB/T':>12}")
        for cell in args.cells:
            for steps in lengths:
                mib = {v: measure_peak(v, cell, args.batch, steps, args.dim, args.units,
                                       checkpoint_interval(steps, args.checkpoint_every) if v == "ckpt" else None)
                       for v in ("ours", "ckpt", "keras", "floor")}
                memory.append(dict(cell=cell, steps=steps, mib=mib))
                print(f"{cell:<11}{steps:>5}" + "".join(f"{mib[v]:>9.0f}" for v in mib)
                      + f"{mib['ours'] / mib['keras']:>11.2f}{mib['ckpt'] / mib['keras']:>11.2f}"
                      f"{1024 * mib['ours'] / steps:>11.0f}{1024 * mib['keras'] / steps:>12.0f}", flush=True)
            if len(lengths) > 1:
                fits = []
                for v in ("ours", "ckpt", "keras"):
                    fit = longest_fitting([(m["steps"], m["mib"][v]) for m in memory if m["cell"] == cell], budget)
                    fits.append(f"{v} " + ("no growth with T" if fit is None else
                                           f"T ~ {fit[0]:,}" + (" (extrapolated)" if fit[1] else "")))
                print(f"{'':<11}longest T in {args.budget_gib:g} GiB: " + ", ".join(fits))
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump({"device": device, "batch": args.batch, "dim": args.dim, "units": args.units,
                       "times": results, "memory": memory}, f, indent=1)
    return results, memory


if __name__ == "__main__":
    main()
