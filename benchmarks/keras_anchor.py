"""Training throughput against the paper's own stack: its U-Net in Keras on TensorFlow-CPU.

The anchor is the seed paper's network written in Keras from its description: 16-32-64-128-256
filters, per level two 3x3 he_normal convs with ReLU and dropout 0.2 between them (0.3 at the
bottom), 2x2 max-pools, 2x2 transposed convs, skips joined by concatenation, a 1x1 softmax;
Dice + focal loss as segmentation_models writes them (one-hot masks, inputs scaled to 0-1),
Adam at 1e-3, batches of 16 of 256². TensorFlow is not a dependency of aerialseg; for this
benchmark only:

    pip install tensorflow-cpu

Against it, in the same process, in alternating rounds, on the same real batches:
- aerialseg train's step (``training.segmentation``: its model building, ``prepare``, its
  fused Adam over its parameter groups, its loss, ``train_step`` with bf16 autocast where the
  CPU has it) for
  the previous default recipe (``unet``), the bundled model's ``unet-effl0`` (ImageNet
  encoder) and ``train``'s default since 2026-12-06, ``unet-effl0-s4`` (its three-step decoder);
- ``unet-effl0``'s step as it was before ``models.upconv`` (decoder steps that upsample and
  concatenate before their first conv) and before ``models.depthwise`` (depthwise convs in
  fp32, and the upsampling decoder);
- the same network as the anchor (``unet-seed``) through aerialseg's step;
- the plain fp32 PyTorch port of that network from train_throughput.py (the weaker anchor);
- with ``--compile``, also ``unet-effl0``'s step with its model under ``torch.compile``
  (Inductor; the first, excluded round compiles it).
Keras runs twice: as compiled by default (``jit_compile="auto"``: XLA on this backend) and
without XLA; the faster is the anchor.

Like the ``aerialseg`` command, the script makes OpenMP's waiting threads sleep rather than
spin (``runtime.passive_thread_waits``, before torch loads); ``GOMP_SPINCOUNT=300000`` in the
environment (libgomp's default) times torch's rows spinning, as before. On shared cores that
is most of the difference at 2 threads (docs/experiments.md, *Threads that wait sleep*); with
``--threads 1`` there is no waiting and it changes nothing.

    python benchmarks/keras_anchor.py [--rounds 3] [--steps 6] [--threads N[,N...]] [--compile]

``--threads 1,2`` runs the whole comparison once per thread count, one process each (the
figures the docs quote: one and two threads).

Figure: the training-throughput ratio against the paper's Keras/TensorFlow stack (patches per
CPU-second), quoted in docs/results.md (training speed); every run in docs/experiments.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

from aerialseg.runtime import passive_thread_waits

passive_thread_waits()  # as the aerialseg command does, before torch loads (see runtime)

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

try:  # run as a script from the repository root or from benchmarks/
    from train_throughput import batches, plain_loss, plain_model
except ImportError:
    from benchmarks.train_throughput import batches, plain_loss, plain_model

from aerialseg.runtime import reuse_freed_memory  # noqa: E402
from aerialseg.training.segmentation import train_step  # noqa: E402


def import_keras(script: str):
    """(keras, tensorflow), or one line saying how to get them and exit 0: TensorFlow is not
    aerialseg's dependency, so a benchmark without it skips rather than fails."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    try:
        import keras
        import tensorflow as tf
    except ImportError:
        print(f"{script}: needs TensorFlow, which aerialseg does not install: "
              "pip install tensorflow-cpu (benchmark only)")  # fmt: skip
        sys.exit(0)
    return keras, tf


def keras_unet(keras, classes: int = 6, base: int = 16, depth: int = 4):
    """The seed paper's U-Net, as its Keras code would build it."""
    layers = keras.layers

    def block(x, filters: int, dropout: float):
        conv = dict(padding="same", activation="relu", kernel_initializer="he_normal")
        x = layers.Conv2D(filters, 3, **conv)(x)
        x = layers.Dropout(dropout)(x)
        return layers.Conv2D(filters, 3, **conv)(x)

    inputs = keras.Input((256, 256, 3))
    x, skips = inputs, []
    for i in range(depth):
        x = block(x, base * 2**i, 0.2)
        skips.append(x)
        x = layers.MaxPooling2D(2)(x)
    x = block(x, base * 2**depth, 0.3)
    for i in reversed(range(depth)):
        x = layers.Conv2DTranspose(base * 2**i, 2, strides=2, padding="same")(x)
        x = block(layers.concatenate([x, skips[i]]), base * 2**i, 0.2)
    outputs = layers.Conv2D(classes, 1, activation="softmax")(x)
    return keras.Model(inputs, outputs)


def keras_loss(keras):
    """segmentation_models' dice_loss + categorical_focal_loss (alpha 0.25, gamma 2)."""
    ops = keras.ops

    def loss(gt, pr):
        tp = ops.sum(gt * pr, axis=(0, 1, 2))
        fp, fn = ops.sum(pr, axis=(0, 1, 2)) - tp, ops.sum(gt, axis=(0, 1, 2)) - tp
        dice = 1 - ops.mean((2 * tp + 1e-5) / (2 * tp + fn + fp + 1e-5))
        pr = ops.clip(pr, 1e-7, 1 - 1e-7)
        focal = ops.mean(-gt * 0.25 * (1 - pr) ** 2 * ops.log(pr))
        return dice + focal

    return loss


def keras_setup(keras, jit: bool | str):
    keras.utils.set_random_seed(0)
    model = keras_unet(keras)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=keras_loss(keras), jit_compile=jit)
    return model


def keras_steps(model, data) -> None:
    for x, y in data:
        model.train_on_batch(x, y)


def torch_steps(setup, data) -> None:
    model, opt, loss_fn, precision = setup
    for x, y in data:
        train_step(model, opt, loss_fn, x, y, precision)


def plain_decoder_steps(setup, data) -> None:
    """The default's step as it was before models.upconv: each decoder step upsampled its
    input and joined its skip before its first conv."""
    from aerialseg.models import efficientnet

    def plain(low, skip, weight):
        y = F.interpolate(low, scale_factor=2.0, mode="nearest")
        y = torch.cat([y, skip], 1) if skip is not None else y
        return F.conv2d(y, weight, None, 1, 1)

    efficientnet.upsampled_conv, today = plain, efficientnet.upsampled_conv
    try:
        torch_steps(setup, data)
    finally:
        efficientnet.upsampled_conv = today


def fp32_depthwise_steps(setup, data) -> None:
    """The default's step as it was before models.depthwise and models.upconv: its depthwise
    convs trained in fp32 (inputs converted, outputs fp32), the rest under bf16 autocast, and
    its decoder upsampled and concatenated."""
    from aerialseg.models.efficientnet import SameConv

    def forward(self, x):
        x = F.pad(x, self.pads) if self.pads else x
        if self.groups > 1 and torch.is_grad_enabled() and torch.is_autocast_enabled("cpu"):
            with torch.autocast("cpu", enabled=False):
                return nn.Conv2d.forward(self, x.float())
        return nn.Conv2d.forward(self, x)

    SameConv.forward, today = forward, SameConv.forward
    try:
        plain_decoder_steps(setup, data)
    finally:
        SameConv.forward = today


def rates(fn, setup, data) -> tuple[float, float]:
    """Patches per second of wall-clock time and per second of this process's CPU time (all
    its threads: on a shared machine the steadier of the two)."""
    w0, c0 = time.perf_counter(), time.process_time()
    fn(setup, data)
    n = sum(len(x) for x, _ in data)
    return n / (time.perf_counter() - w0), n / (time.process_time() - c0)


def samples_of(batch) -> list:
    """One batch as the one training sample aerialseg computes its normalisation from."""
    from aerialseg.data.segmentation import Sample

    x, y = batch
    rgb = x.permute(0, 2, 3, 1).reshape(-1, x.shape[-1], 3).clamp(0, 255).to(torch.uint8)
    labels = y.reshape(-1, y.shape[-1]).to(torch.uint8)
    return [Sample("batch", "batch", rgb.numpy(), labels.numpy())]


def aerialseg_setup(arch: str, samples):
    """What ``aerialseg train --arch ARCH`` builds before its first step."""
    from aerialseg.classes import DUBAI
    from aerialseg.config import TrainConfig
    from aerialseg.losses import make_loss
    from aerialseg.runtime import prepare, resolve_precision
    from aerialseg.training.segmentation import build_model, make_optimizer

    torch.manual_seed(0)
    cfg = TrainConfig(arch=arch)
    precision = resolve_precision(cfg.precision)
    model = prepare(build_model(cfg, DUBAI, samples), precision, "cpu").train()
    opt = make_optimizer(cfg, model)
    return model, opt, make_loss(cfg.loss), precision


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=6, help="batches per round and setup")
    ap.add_argument(
        "--threads", help="threads for both, or a list (1,2): one run each (default: torch's)"
    )
    ap.add_argument("--compile", action="store_true", help="add unet-effl0 under torch.compile")
    args = ap.parse_args()
    counts = [int(n) for n in args.threads.split(",")] if args.threads else []
    if len(counts) > 1:  # TensorFlow fixes its thread pools once: one process per count
        same = ["--rounds", str(args.rounds), "--steps", str(args.steps)]
        same += ["--compile"] if args.compile else []
        for n in counts:
            subprocess.run([sys.executable, __file__, *same, "--threads", str(n)], check=True)
        return
    keras, tf = import_keras("keras_anchor.py")
    # as `aerialseg train` runs; process-wide, so Keras gets it too (it can only help it)
    reuse_freed_memory()
    threads = counts[0] if counts else torch.get_num_threads()
    torch.set_num_threads(threads)
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)

    source, data = batches(16, args.steps)
    samples = samples_of(data[0])
    keras_data = [  # NHWC, 0-1, one-hot masks: what the paper's pipeline fed Keras
        (
            x.permute(0, 2, 3, 1).numpy() / 255.0,
            np.eye(6, dtype=np.float32)[np.where(y.numpy() < 6, y.numpy(), 0)],
        )
        for x, y in data
    ]
    setups = {
        "Keras/TF, XLA (default)": ("keras", keras_setup(keras, "auto")),
        "Keras/TF, no XLA": ("keras", keras_setup(keras, False)),
        "PyTorch plain port, fp32": ("torch", None),
        "aerialseg unet-seed": ("torch", aerialseg_setup("unet-seed", samples)),
        "aerialseg unet (prev. default)": ("torch", aerialseg_setup("unet", samples)),
        "aerialseg unet-effl0 (bundled)": ("torch", aerialseg_setup("unet-effl0", samples)),
        "unet-effl0, upsample+cat decoder": ("plaindec", aerialseg_setup("unet-effl0", samples)),
        "unet-effl0, also fp32 depthwise": ("fp32dw", aerialseg_setup("unet-effl0", samples)),
        "aerialseg unet-effl0-s4 (default)": ("torch", aerialseg_setup("unet-effl0-s4", samples)),
        "aerialseg unet-effl0-fbn": ("torch", aerialseg_setup("unet-effl0-fbn", samples)),
    }
    if args.compile:
        model, *rest = aerialseg_setup("unet-effl0", samples)
        setups["aerialseg unet-effl0, compiled"] = ("torch", (torch.compile(model), *rest))
    torch.manual_seed(0)
    plain = plain_model()
    setups["PyTorch plain port, fp32"] = (
        "torch",
        (plain, torch.optim.Adam(plain.parameters(), 1e-3), plain_loss, "fp32"),
    )
    measured: dict[str, list[tuple[float, float]]] = {name: [] for name in setups}
    load0 = os.getloadavg()
    steps = {
        "keras": keras_steps,
        "torch": torch_steps,
        "fp32dw": fp32_depthwise_steps,
        "plaindec": plain_decoder_steps,
    }
    for r in range(args.rounds + 1):  # round 0: warm-up (tracing, XLA, oneDNN kernels)
        for name, (kind, setup) in setups.items():
            fn, batches_ = steps[kind], keras_data if kind == "keras" else data
            wall, cpu = rates(fn, setup, batches_ if r else batches_[:2])
            if r:
                measured[name].append((wall, cpu))
                print(f"round {r}: {name:<34} {wall:6.1f} patches/s, {cpu:6.1f} per CPU-second",
                      flush=True)  # fmt: skip
    load1 = os.getloadavg()
    med = {name: tuple(statistics.median(col) for col in zip(*v)) for name, v in measured.items()}
    keras_rows = ("Keras/TF, XLA (default)", "Keras/TF, no XLA")
    anchor = [max(med[k][i] for k in keras_rows) for i in (0, 1)]
    print(
        f"\nbatches of 16 x 256², {source}, {threads} threads (TensorFlow {tf.__version__}, "
        f"Keras {keras.__version__}, torch {torch.__version__}); load average "
        f"{load0[0]:.1f} at the start, {load1[0]:.1f} at the end; medians of {args.rounds} "
        f"rounds; ratios against the faster Keras row"
    )
    for name, (wall, cpu) in med.items():
        print(
            f"  {name:<34} {wall:6.1f} patches/s ({wall / anchor[0]:4.2f}x)  "
            f"{cpu:6.1f} per CPU-second ({cpu / anchor[1]:4.2f}x)"
        )


if __name__ == "__main__":
    main()
