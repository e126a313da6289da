"""One training step (forward + backward) of SimpleRNN, LSTM and GRU: ours vs Keras vs a GEMM floor.

    python benchmarks/layers.py                 # B=64, D=H=256, T=100 and T=400
    python benchmarks/layers.py --steps 100 --cells lstm --repeats 20
    python benchmarks/layers.py --dtype-policy float32 mixed_bfloat16   # 16-bit compute too

All three are timed in one run, on the same machine, with the same weights:
  * ours     — `seqapps.layers.X` (fused path: one input matmul + hand-written BPTT; cuDNN on GPU)
  * ours+xla — the same with the loops compiled by XLA (`compiled_loops(True)`)
  * keras    — `keras.layers.X` with our weights copied in (cuDNN on GPU for LSTM/GRU)
  * floor    — only the matrix products any implementation must do, with distinct operands
               (TF's optimizer merges identical ops): the input projection, T sequential
               recurrent products, and their backward counterparts (dX, dW, dU as large
               matmuls, T sequential dh products).
Peak memory of the step at the longest T is measured per variant in a fresh subprocess
(peak RSS above the idle process on CPU, `tf.config.experimental.get_memory_info` peak on GPU).
With several `--dtype-policy` values every variant is timed under each Keras dtype policy in
the same run (mixed_*: 16-bit compute, float32 weights; the floor's matmuls in that compute
dtype), so their ratio is measured in one run too.
Targets (issue #3): CPU ours <= 0.75x keras for LSTM/GRU and <= 2.5x floor; GPU ours <= 1.1x cuDNN.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

GATES = {"simple_rnn": 1, "lstm": 4, "gru": 3}
KERAS_NAMES = {"simple_rnn": "SimpleRNN", "lstm": "LSTM", "gru": "GRU"}


def build_step(variant, cell, batch, steps, dim, units):
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
    layer_cls = getattr(keras.layers if variant == "keras" else seqapps.layers, KERAS_NAMES[cell])
    compiled = variant == "ours+xla"
    layer = layer_cls(units, return_sequences=True)
    layer.build((batch, steps, dim))
    reference = getattr(keras.layers, KERAS_NAMES[cell])(units, return_sequences=True)
    reference.build((batch, steps, dim))
    layer.set_weights(reference.get_weights())  # same weights for both variants
    weights = layer.trainable_weights

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


def peak_memory_child(variant, cell, batch, steps, dim, units):
    """Runs in a subprocess: prints the peak memory of one training step, in MiB."""
    import resource

    import tensorflow as tf

    step, x = build_step(variant, cell, batch, steps, dim, units)
    gpu = bool(tf.config.list_physical_devices("GPU"))
    if gpu:
        tf.config.experimental.reset_memory_stats("GPU:0")
        step(x)
        peak = tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20
    else:
        # Peak RSS above the idle baseline, sampled while the step runs (TF's CPU allocator
        # has no peak counter).
        import threading

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
        for _ in range(3):
            [o.numpy() for o in step(x)]
        done.set()
        sampler.join()
        peak = peak_rss[0] - baseline
    print(json.dumps({"peak_mib": peak, "device": "GPU" if gpu else "CPU"}))


def measure_peak(variant, cell, batch, steps, dim, units):
    cmd = [sys.executable, __file__, "--child", variant, cell, str(batch), str(steps), str(dim), str(units)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])["peak_mib"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cells", nargs="+", default=["lstm", "gru", "simple_rnn"], choices=list(GATES))
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--units", type=int, default=256)
    parser.add_argument("--steps", type=int, nargs="+", default=[100, 400])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    parser.add_argument("--dtype-policy", nargs="+", default=["float32"],
                        choices=["float32", "mixed_bfloat16", "mixed_float16"],
                        help="Keras dtype policies to time every variant under (default float32)")
    parser.add_argument("--child", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        variant, cell, *nums = args.child
        return peak_memory_child(variant, cell, *map(int, nums))

    import tensorflow as tf

    device = "GPU" if tf.config.list_physical_devices("GPU") else f"CPU ({os.cpu_count()} cores)"
    print(f"device: {device}; B={args.batch} D={args.dim} H={args.units}; median of {args.repeats}")
    print(f"{'cell':<11}{'T':>5}{'policy':>16}{'ours ms':>10}{'+xla ms':>10}{'keras ms':>10}{'floor ms':>10}"
          f"{'ours/keras':>12}{'xla/keras':>11}{'ours/floor':>12}")
    results = []
    for cell in args.cells:
        for steps, policy in [(s, p) for s in args.steps for p in args.dtype_policy]:
            os.environ["BENCH_DTYPE_POLICY"] = policy  # read by build_step (and the memory child)
            ms = {}
            for variant in ("ours", "ours+xla", "keras", "floor"):
                step, x = build_step(variant, cell, args.batch, steps, args.dim, args.units)
                ms[variant] = 1000 * time_step(step, x, args.repeats)
            row = dict(cell=cell, steps=steps, policy=policy, **ms)
            results.append(row)
            print(
                f"{cell:<11}{steps:>5}{policy:>16}{ms['ours']:>10.1f}{ms['ours+xla']:>10.1f}{ms['keras']:>10.1f}"
                f"{ms['floor']:>10.1f}{ms['ours'] / ms['keras']:>12.2f}"
                f"{ms['ours+xla'] / ms['keras']:>11.2f}{ms['ours'] / ms['floor']:>12.2f}",
                flush=True,
            )
    if not args.no_memory:
        steps = max(args.steps)
        os.environ["BENCH_DTYPE_POLICY"] = args.dtype_policy[0]
        print(f"\npeak memory of one training step at T={steps}, {args.dtype_policy[0]} (MiB)")
        print(f"{'cell':<11}{'ours':>10}{'keras':>10}{'ours/keras':>12}")
        for cell in args.cells:
            ours = measure_peak("ours", cell, args.batch, steps, args.dim, args.units)
            keras_ = measure_peak("keras", cell, args.batch, steps, args.dim, args.units)
            print(f"{cell:<11}{ours:>10.0f}{keras_:>10.0f}{ours / max(keras_, 1e-9):>12.2f}", flush=True)
    return results


if __name__ == "__main__":
    main()
