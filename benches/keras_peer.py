"""Keras 3 / TensorFlow-CPU peer: a facerecon config's network (configs/unet.yaml, configs/seed.yaml) trained
with train_on_batch, as the seed's Keras bench (../shared/bench/keras_seed_ae.py) trains the tutorial's network.

Usage (a Python with tensorflow-cpu, keras, numpy, pyyaml: scripts/bench-venv.sh makes one):
  python benches/keras_peer.py --config configs/unet.yaml --batches 16,32 [--steps 8] [--warmup 3] [--threads 2]
      [--exact 1] [--jit 0]

The layers come from the config through benches/peer_spec.py. TensorFlow's CPU convolutions are NHWC, so the
network runs channels-last. --exact 1 (default) reproduces facerecon's pixel alignment: Keras' `same` pads a
stride-2 convolution 0 before / 1 after (facerecon pads 1 on both sides) and places a stride-2 transposed
convolution's taps one pixel off, so those layers become ZeroPadding2D + `valid` conv and `valid` transposed
conv + Cropping2D, and flatten / reshape go through NCHW order; the weights then mean the same thing
(benches/peer_check.py checks it against facerecon's ONNX export). --exact 0 is the network a Keras user
writes with padding="same": the same layers, shapes, parameters and multiply-adds, pixels shifted by one.
Loss: the config's MSE / L1 weighted hole_weight in the hole (the mask rides along as a 4th target channel);
Adam with the config's lr, betas, eps. One constant in-memory batch per batch size; one RESULT line each.
"""
import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["KERAS_BACKEND"] = "tensorflow"

import numpy as np  # noqa: E402

import peer_spec  # noqa: E402


def build(cfg, exact=True):
    """keras.Model([image, mask] NHWC) -> reconstruction NHWC, for the config's layers."""
    import keras
    from keras import layers as L
    m = cfg["model"]
    s, c = m.get("image_size", 128), m.get("channels", 3)
    image, mask = keras.Input((s, s, c), name="image"), keras.Input((s, s, 1), name="mask")
    v = {"image": image, "mask": mask}
    v["input"] = L.Concatenate()([image, mask]) if m.get("mask_channel") else image
    for l in peer_spec.resolve(m):
        x, op, n = v[l["inputs"][0]], l["op"], l["name"]
        if op == "conv2d":
            k, st, d, p = l["kernel"], l["stride"], l["dilation"], l["pad"]
            # Keras' `same` equals facerecon's padding for stride 1 and an even total padding d*(k-1).
            native = st == 1 and d * (k - 1) == 2 * p
            if exact and not native and p > 0:
                x = L.ZeroPadding2D(p, name=n + "_pad")(x)
            pad = "same" if native or not exact else "valid"
            y = L.Conv2D(l["filters"], k, strides=st, padding=pad, dilation_rate=d, use_bias=l["bias"], name=n)(x)
        elif op == "conv_transpose2d":
            k, st, p, op_ = l["kernel"], l["stride"], l["pad"], l["out_pad"]
            if exact:
                # `valid` puts input pixel i's tap t at st*i + t; facerecon (like ONNX / PyTorch) at
                # st*i + t - p, and its output is p - op_ pixels shorter at the end.
                y = L.Conv2DTranspose(l["filters"], k, strides=st, padding="valid", use_bias=l["bias"], name=n)(x)
                assert p >= op_, "a transposed conv whose output_padding exceeds its padding"
                if p > 0:
                    y = L.Cropping2D(((p, p - op_), (p, p - op_)), name=n + "_crop")(y)
            else:
                y = L.Conv2DTranspose(l["filters"], k, strides=st, padding="same", use_bias=l["bias"], name=n)(x)
        elif op == "dense":
            y = L.Dense(l["units"], use_bias=l["bias"], name=n)(x)
        elif op == "flatten":
            y = L.Flatten(name=n)(L.Permute((3, 1, 2))(x) if exact else x)  # exact: facerecon's C-major order
        elif op == "reshape":
            ch, h, w = l["shape"]
            y = L.Permute((2, 3, 1), name=n)(L.Reshape((ch, h, w))(x)) if exact else L.Reshape((h, w, ch), name=n)(x)
        elif op == "leaky_relu":
            y = L.LeakyReLU(negative_slope=l["slope"], name=n)(x)
        elif op in ("relu", "sigmoid", "tanh"):
            y = L.Activation(op, name=n)(x)
        elif op == "upsample":
            y = L.UpSampling2D(l["scale"], name=n)(x)
        elif op == "concat":
            y = L.Concatenate(name=n)([v[i] for i in l["inputs"]])
        else:  # add
            y = L.Add(name=n)([v[i] for i in l["inputs"]])
        v[n] = y
    return keras.Model([image, mask], y, name=cfg["name"])


def loss_fn(cfg, channels):
    """facerecon's loss; y_true = target ++ mask (NHWC, channels + 1), y_pred = the reconstruction."""
    from keras import ops
    hw, l1 = cfg["loss"]["hole_weight"], cfg["loss"]["kind"] == "l1"

    def loss(y_true, y_pred):
        d = y_pred - y_true[..., :channels]
        per = ops.abs(d) if l1 else d * d
        return ops.mean(per) if hw == 1.0 else ops.mean(per * (1.0 + (hw - 1.0) * y_true[..., channels:]))
    return loss


def compile_model(cfg, model, jit=False):
    import keras
    o = cfg["optimizer"]
    opt = keras.optimizers.Adam(learning_rate=o["lr"], beta_1=o["beta1"], beta_2=o["beta2"], epsilon=o["eps"])
    model.compile(optimizer=opt, loss=loss_fn(cfg, cfg["model"].get("channels", 3)), jit_compile=jit)


def nhwc(t):
    return np.ascontiguousarray(t.transpose(0, 2, 3, 1))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--config", default="configs/unet.yaml")
    p.add_argument("--batches", default="16,32")
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--exact", type=int, default=1, help="1: facerecon's pixel alignment; 0: Keras' own 'same'")
    p.add_argument("--jit", type=int, default=0, help="compile(jit_compile=...): XLA; Keras' 'auto' is off on CPU")
    a = p.parse_args()
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(a.threads)
    tf.config.threading.set_inter_op_parallelism_threads(a.threads)
    import keras
    cfg = peer_spec.load(a.config)
    for b in [int(s) for s in a.batches.split(",")]:
        keras.utils.set_random_seed(0)
        model = build(cfg, exact=bool(a.exact))
        compile_model(cfg, model, jit=bool(a.jit))
        x, m, y = peer_spec.make_batch(cfg["model"], b)
        xs = [tf.constant(nhwc(x)), tf.constant(nhwc(m))]
        yt = tf.constant(np.concatenate([nhwc(y), nhwc(m)], axis=-1))
        last = [0.0]

        def step():
            last[0] = model.train_on_batch(xs, yt)
        ts = peer_spec.time_steps(step, a.warmup, a.steps)
        peer_spec.result("keras", cfg, b, a.threads, ts, last[0], params=int(model.count_params()),
                         exact=a.exact, jit=a.jit, keras=keras.__version__, tensorflow=tf.__version__)


if __name__ == "__main__":
    main()
