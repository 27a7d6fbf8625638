//! Forward and gradients against naive f64 loops (exact references), candle's own ops + autograd,
//! and finite differences, on random small shapes.
use super::*;
use crate::layers::{Backend, ConvParams};
use candle_core::{DType, Device, Var};
use rand::{rngs::StdRng, Rng, SeedableRng};

const TOL: f64 = 1e-4;

/// The kernels under test.
const K: Backend = Backend::Kernels;

/// configs/seed.yaml's convolutions: 3x3, stride 2, `same` padding (a transposed one adds output padding 1).
const SEED_CONV: ConvParams = ConvParams {
    stride: 2,
    padding: 1,
    dilation: 1,
    output_padding: 0,
};
const SEED_CONV_T: ConvParams = ConvParams {
    output_padding: 1,
    ..SEED_CONV
};

/// A per-channel bias `[c]` shaped to broadcast over NCHW.
fn bias4(b: &Tensor) -> Result<Tensor> {
    b.reshape((1, b.elem_count(), 1, 1))
}

#[derive(Clone, Copy, Debug)]
struct Case {
    n: usize,
    ci: usize,
    co: usize,
    h: usize,
    w: usize,
    k: usize,
    s: usize,
    p: usize,
    d: usize,
    op: usize,
    transpose: bool,
    bias: bool,
}

impl Case {
    fn random(rng: &mut StdRng, transpose: bool) -> Self {
        loop {
            let s = rng.gen_range(1..=2);
            let c = Case {
                n: [1, 3][rng.gen_range(0..2)],
                ci: rng.gen_range(1..=5),
                co: rng.gen_range(1..=5),
                h: rng.gen_range(3..=9),
                w: rng.gen_range(3..=9),
                k: rng.gen_range(1..=3),
                s,
                p: rng.gen_range(0..=1),
                d: if transpose { 1 } else { rng.gen_range(1..=2) },
                op: if transpose { rng.gen_range(0..s) } else { 0 },
                transpose,
                bias: rng.gen_bool(0.5),
            };
            let ok = if transpose {
                (c.h - 1) * s + c.k + c.op > 2 * c.p
            } else {
                c.h.min(c.w) + 2 * c.p > c.d * (c.k - 1)
            };
            if ok {
                return c;
            }
        }
    }

    fn x_dims(&self) -> (usize, usize, usize, usize) {
        (self.n, self.ci, self.h, self.w)
    }
    fn w_dims(&self) -> (usize, usize, usize, usize) {
        if self.transpose {
            (self.ci, self.co, self.k, self.k)
        } else {
            (self.co, self.ci, self.k, self.k)
        }
    }
    fn out_hw(&self) -> (usize, usize) {
        let f = |i: usize| {
            if self.transpose {
                (i - 1) * self.s + self.d * (self.k - 1) + self.op + 1 - 2 * self.p
            } else {
                (i + 2 * self.p - self.d * (self.k - 1) - 1) / self.s + 1
            }
        };
        (f(self.h), f(self.w))
    }

    fn params(&self) -> ConvParams {
        ConvParams {
            stride: self.s,
            padding: self.p,
            dilation: self.d,
            output_padding: self.op,
        }
    }

    fn run(&self, x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
        if self.transpose {
            K.conv_transpose2d(x, w, b, self.params())
        } else {
            K.conv2d(x, w, b, self.params())
        }
    }

    /// Calls `f(x_index, w_index, y_index)` for every multiply-add of the convolution.
    fn for_each_term(&self, mut f: impl FnMut(usize, usize, usize)) {
        let (oh, ow) = self.out_hw();
        let (n, ci, co, k) = (self.n, self.ci, self.co, self.k);
        for b in 0..n {
            for i in 0..ci {
                for o in 0..co {
                    for ky in 0..k {
                        for kx in 0..k {
                            // (small y/x, big y/x): conv2d reads big x at small output; transpose writes.
                            let (sh, sw) = if self.transpose { (self.h, self.w) } else { (oh, ow) };
                            let (bh, bw) = if self.transpose { (oh, ow) } else { (self.h, self.w) };
                            for sy in 0..sh {
                                for sx in 0..sw {
                                    let by = (sy * self.s + ky * self.d) as isize - self.p as isize;
                                    let bx = (sx * self.s + kx * self.d) as isize - self.p as isize;
                                    if by < 0 || bx < 0 || by >= bh as isize || bx >= bw as isize {
                                        continue;
                                    }
                                    let (by, bx) = (by as usize, bx as usize);
                                    if self.transpose {
                                        let xi = ((b * ci + i) * sh + sy) * sw + sx;
                                        let wi = ((i * co + o) * k + ky) * k + kx;
                                        let yi = ((b * co + o) * bh + by) * bw + bx;
                                        f(xi, wi, yi)
                                    } else {
                                        let xi = ((b * ci + i) * bh + by) * bw + bx;
                                        let wi = ((o * ci + i) * k + ky) * k + kx;
                                        let yi = ((b * co + o) * sh + sy) * sw + sx;
                                        f(xi, wi, yi)
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn randn(rng: &mut StdRng, dims: impl Into<candle_core::Shape>) -> Tensor {
    let shape = dims.into();
    let v: Vec<f32> = (0..shape.elem_count()).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

fn vec64(t: &Tensor) -> Vec<f64> {
    t.flatten_all()
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .to_vec1()
        .unwrap()
}

/// max |a - b| / max(max |b|, 1e-3) <= TOL.
fn assert_close(what: &str, got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(1e-3f64, |m, v| m.max(v.abs()));
    let err = got.iter().zip(want).fold(0f64, |m, (a, b)| m.max((a - b).abs()));
    assert!(err <= tol * scale, "{what}: max error {err:e} vs scale {scale:e}");
}

/// y = conv(x, w) + b and the gradients of L = Σ y ⊙ r, by naive f64 loops.
fn naive(c: &Case, x: &[f64], w: &[f64], b: &[f64], r: &[f64]) -> [Vec<f64>; 4] {
    let (oh, ow) = c.out_hw();
    let plane = oh * ow;
    let mut y: Vec<f64> = (0..c.n * c.co * plane)
        .map(|i| if c.bias { b[(i / plane) % c.co] } else { 0.0 })
        .collect();
    let (mut dx, mut dw) = (vec![0.0; x.len()], vec![0.0; w.len()]);
    let mut db = vec![0.0; c.co];
    c.for_each_term(|xi, wi, yi| {
        y[yi] += x[xi] * w[wi];
        dx[xi] += r[yi] * w[wi];
        dw[wi] += r[yi] * x[xi];
    });
    for (i, v) in r.iter().enumerate() {
        db[(i / plane) % c.co] += v;
    }
    [y, dx, dw, db]
}

#[test]
fn conv_ops_match_naive_loops_and_candle() {
    let mut rng = StdRng::seed_from_u64(7);
    for i in 0..40 {
        let c = Case::random(&mut rng, i % 2 == 1);
        let x = Var::from_tensor(&randn(&mut rng, c.x_dims())).unwrap();
        let w = Var::from_tensor(&randn(&mut rng, c.w_dims())).unwrap();
        let b = Var::from_tensor(&randn(&mut rng, c.co)).unwrap();
        let bias = c.bias.then_some(b.as_tensor());
        let y = c.run(&x, &w, bias).unwrap();
        let r = randn(&mut rng, y.shape());
        let grads = (&y * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let [y_ref, dx_ref, dw_ref, db_ref] = naive(&c, &vec64(&x), &vec64(&w), &vec64(&b), &vec64(&r));
        let (oh, ow) = c.out_hw();
        assert_eq!(y.dims(), &[c.n, c.co, oh, ow], "{c:?}");
        assert_close(&format!("y {c:?}"), &vec64(&y), &y_ref, TOL);
        assert_close(&format!("dx {c:?}"), &vec64(grads.get(&x).unwrap()), &dx_ref, TOL);
        assert_close(&format!("dw {c:?}"), &vec64(grads.get(&w).unwrap()), &dw_ref, TOL);
        if c.bias {
            assert_close(&format!("db {c:?}"), &vec64(grads.get(&b).unwrap()), &db_ref, TOL);
        }

        // candle's own ops: forward always; autograd for conv2d (its transposed-conv backward ignores
        // output padding, so it is compared on the seed's configuration in its own test).
        let x64 = x.as_tensor().to_dtype(DType::F64).unwrap();
        let w64 = w.as_tensor().to_dtype(DType::F64).unwrap();
        let yc = if c.transpose {
            x64.conv_transpose2d(&w64, c.p, c.op, c.s, 1).unwrap()
        } else {
            x64.conv2d(&w64, c.p, c.s, c.d, 1).unwrap()
        };
        let yc = if c.bias {
            yc.broadcast_add(&bias4(&b.to_dtype(DType::F64).unwrap()).unwrap())
                .unwrap()
        } else {
            yc
        };
        assert_close(&format!("candle y {c:?}"), &vec64(&y), &vec64(&yc), TOL);
    }
}

#[test]
fn gradients_match_candle_autograd_on_seed_layers() {
    let mut rng = StdRng::seed_from_u64(11);
    // (transpose, n, ci, co, h): stride 2, `same` padding, 3x3 kernels as in configs/seed.yaml.
    for &(transpose, n, ci, co, h) in &[
        (false, 2, 3, 4, 8),
        (false, 3, 4, 2, 7),
        (true, 2, 4, 3, 4),
        (true, 1, 2, 2, 5),
    ] {
        let xs = randn(&mut rng, (n, ci, h, h));
        let ws = randn(&mut rng, if transpose { (ci, co, 3, 3) } else { (co, ci, 3, 3) });
        let bs = randn(&mut rng, co);
        let ours = |x: &Tensor, w: &Tensor, b: &Tensor| {
            if transpose {
                K.conv_transpose2d(x, w, Some(b), SEED_CONV_T)
            } else {
                K.conv2d(x, w, Some(b), SEED_CONV)
            }
        };
        let theirs = |x: &Tensor, w: &Tensor, b: &Tensor| {
            let y = if transpose {
                x.conv_transpose2d(w, 1, 1, 2, 1)
            } else {
                x.conv2d(w, 1, 2, 1, 1)
            }?;
            y.broadcast_add(&bias4(b)?)
        };
        let mut results = vec![];
        for f in [&ours as &dyn Fn(&Tensor, &Tensor, &Tensor) -> Result<Tensor>, &theirs] {
            let (x, w, b) = (
                Var::from_tensor(&xs).unwrap(),
                Var::from_tensor(&ws).unwrap(),
                Var::from_tensor(&bs).unwrap(),
            );
            let y = K.leaky_relu(&f(&x, &w, &b).unwrap(), 0.2).unwrap();
            let loss = y.sqr().unwrap().sum_all().unwrap();
            let g = loss.backward().unwrap();
            results.push([
                y.clone(),
                g.get(&x).unwrap().clone(),
                g.get(&w).unwrap().clone(),
                g.get(&b).unwrap().clone(),
            ]);
        }
        for (name, (a, b)) in ["y", "dx", "dw", "db"].iter().zip(results[0].iter().zip(&results[1])) {
            assert_close(&format!("{name} transpose={transpose}"), &vec64(a), &vec64(b), TOL);
        }
    }
}

/// The data image does not lead to a variable: its gradient is not computed (nor returned).
#[test]
fn untracked_input_gets_no_gradient() {
    let mut rng = StdRng::seed_from_u64(3);
    let x = randn(&mut rng, (2, 3, 8, 8));
    let w = Var::from_tensor(&randn(&mut rng, (4, 3, 3, 3))).unwrap();
    let y = K.conv2d(&x, &w, None, SEED_CONV).unwrap();
    let grads = y.sum_all().unwrap().backward().unwrap();
    assert!(grads.get(&x).is_none());
    let c = Case {
        n: 2,
        ci: 3,
        co: 4,
        h: 8,
        w: 8,
        k: 3,
        s: 2,
        p: 1,
        d: 1,
        op: 0,
        transpose: false,
        bias: false,
    };
    let ones = vec![1.0; y.elem_count()];
    let [_, _, dw_ref, _] = naive(&c, &vec64(&x), &vec64(&w), &[], &ones);
    assert_close("dw", &vec64(grads.get(&w).unwrap()), &dw_ref, TOL);
}

/// Central finite differences of a non-linear loss through conv -> leaky_relu -> conv_transpose -> sigmoid.
#[test]
fn chain_gradients_match_finite_differences() {
    let mut rng = StdRng::seed_from_u64(5);
    let x = randn(&mut rng, (2, 2, 6, 6));
    let w1 = Var::from_tensor(&randn(&mut rng, (3, 2, 3, 3))).unwrap();
    let w2 = Var::from_tensor(&randn(&mut rng, (3, 2, 3, 3))).unwrap();
    let target = randn(&mut rng, (2, 2, 6, 6));
    let loss = |w1: &Tensor, w2: &Tensor| -> Result<Tensor> {
        let h = K.leaky_relu(&K.conv2d(&x, w1, None, SEED_CONV)?, 0.2)?;
        let y = K.sigmoid(&K.conv_transpose2d(&h, w2, None, SEED_CONV_T)?)?;
        // The loss is summed in f64 so that finite differences measure the f32 kernels, not the sum's rounding.
        (y - &target)?.to_dtype(DType::F64)?.sqr()?.sum_all()
    };
    let grads = loss(&w1, &w2).unwrap().backward().unwrap();
    for (var, other, first) in [(&w1, &w2, true), (&w2, &w1, false)] {
        let g = vec64(grads.get(var).unwrap());
        let base: Vec<f32> = var.flatten_all().unwrap().to_vec1().unwrap();
        for i in (0..base.len()).step_by(5) {
            let eps = 1e-3f32;
            let at = |delta: f32| {
                let mut v = base.clone();
                v[i] += delta;
                let t = Tensor::from_vec(v, var.shape(), &Device::Cpu).unwrap();
                let l = if first { loss(&t, other) } else { loss(other, &t) };
                l.unwrap().to_dtype(DType::F64).unwrap().to_scalar::<f64>().unwrap()
            };
            let fd = (at(eps) - at(-eps)) / (2.0 * eps as f64);
            assert!(
                (fd - g[i]).abs() <= 2e-2 * g[i].abs().max(0.1),
                "w{} [{i}]: fd {fd} vs autograd {}",
                if first { 1 } else { 2 },
                g[i]
            );
        }
    }
}

#[test]
fn activations_match_candle() {
    let mut rng = StdRng::seed_from_u64(9);
    let xs = randn(&mut rng, (3, 4, 5, 7));
    for slope in [0.2, 0.0, -0.5] {
        let x = Var::from_tensor(&xs).unwrap();
        let y = K.leaky_relu(&x, slope).unwrap();
        let g = (&y * &y).unwrap().sum_all().unwrap().backward().unwrap();
        let x2 = Var::from_tensor(&xs).unwrap();
        let y2 = candle_nn::ops::leaky_relu(&x2, slope).unwrap();
        let g2 = (&y2 * &y2).unwrap().sum_all().unwrap().backward().unwrap();
        assert_close("leaky y", &vec64(&y), &vec64(&y2), 1e-6);
        assert_close(
            "leaky dx",
            &vec64(g.get(&x).unwrap()),
            &vec64(g2.get(&x2).unwrap()),
            1e-6,
        );
    }
    let x = Var::from_tensor(&xs).unwrap();
    let y = K.sigmoid(&x).unwrap();
    let g = (&y * &y).unwrap().sum_all().unwrap().backward().unwrap();
    let x2 = Var::from_tensor(&xs).unwrap();
    let y2 = candle_nn::ops::sigmoid(&x2).unwrap();
    let g2 = (&y2 * &y2).unwrap().sum_all().unwrap().backward().unwrap();
    assert_close("sigmoid y", &vec64(&y), &vec64(&y2), 1e-6);
    assert_close(
        "sigmoid dx",
        &vec64(g.get(&x).unwrap()),
        &vec64(g2.get(&x2).unwrap()),
        1e-5,
    );
}

/// Non-f32 tensors take candle's path and agree with the custom kernels.
#[test]
fn other_dtypes_fall_back_to_candle() {
    let mut rng = StdRng::seed_from_u64(13);
    let (x, w, b) = (
        randn(&mut rng, (2, 3, 6, 5)),
        randn(&mut rng, (3, 4, 3, 3)),
        randn(&mut rng, 4),
    );
    let f = |t: &Tensor| t.to_dtype(DType::F64).unwrap();
    let y32 = Backend::for_tensors(&[&x, &w, &b])
        .conv_transpose2d(&x, &w, Some(&b), SEED_CONV_T)
        .unwrap();
    let (x64, w64, b64) = (f(&x), f(&w), f(&b));
    let ops = Backend::for_tensors(&[&x64, &w64, &b64]);
    assert_eq!(ops, Backend::Candle);
    let y64 = ops.conv_transpose2d(&x64, &w64, Some(&b64), SEED_CONV_T).unwrap();
    assert_eq!(y64.dtype(), DType::F64);
    assert_close("convT f64", &vec64(&y32), &vec64(&y64), TOL);
}

#[test]
fn bad_shapes_are_errors() {
    let x = Tensor::zeros((1, 3, 4, 4), DType::F32, &Device::Cpu).unwrap();
    let w = Tensor::zeros((2, 5, 3, 3), DType::F32, &Device::Cpu).unwrap();
    let err = K.conv2d(&x, &w, None, ConvParams::default()).unwrap_err().to_string();
    assert!(err.contains("channels"), "{err}");
    let w = Tensor::zeros((2, 3, 7, 7), DType::F32, &Device::Cpu).unwrap();
    assert!(K.conv2d(&x, &w, None, ConvParams::default()).is_err());
    // Output padding belongs to transposed convolutions only, on every backend.
    let w = Tensor::zeros((2, 3, 3, 3), DType::F32, &Device::Cpu).unwrap();
    for ops in [Backend::Kernels, Backend::Candle, Backend::Reference] {
        let err = ops.conv2d(&x, &w, None, SEED_CONV_T).unwrap_err().to_string();
        assert!(err.contains("output padding"), "{ops:?}: {err}");
    }
}

/// The fused conv + activation ops (LeakyReLU slope 0.2 and 0, sigmoid) equal the two ops in
/// sequence, values and gradients.
#[test]
fn fused_activations_match_separate_ops() {
    let mut rng = StdRng::seed_from_u64(17);
    for i in 0..24 {
        let c = Case::random(&mut rng, i % 2 == 1);
        let act = [Act::LeakyRelu(0.2), Act::LeakyRelu(0.0), Act::Sigmoid][i / 2 % 3];
        let (xs, ws, bs) = (
            randn(&mut rng, c.x_dims()),
            randn(&mut rng, c.w_dims()),
            randn(&mut rng, c.co),
        );
        let track_x = i % 3 != 0;
        let mut outs = vec![];
        for fused in [true, false] {
            let x = Var::from_tensor(&xs).unwrap();
            let x_in = if track_x { x.as_tensor().clone() } else { xs.clone() };
            let (w, b) = (Var::from_tensor(&ws).unwrap(), Var::from_tensor(&bs).unwrap());
            let bias = c.bias.then_some(b.as_tensor());
            let y = match (fused, c.transpose) {
                (true, false) => K.conv2d_act(&x_in, &w, bias, c.params(), act),
                (true, true) => K.conv_transpose2d_act(&x_in, &w, bias, c.params(), act),
                (false, _) => K.activation(&c.run(&x_in, &w, bias).unwrap(), act),
            }
            .unwrap();
            let g = y.sqr().unwrap().sum_all().unwrap().backward().unwrap();
            assert_eq!(g.get(&x).is_some(), track_x, "{c:?}");
            let get = |v: &Var| g.get(v).map(vec64).unwrap_or_default();
            outs.push([vec64(&y), get(&x), get(&w), if c.bias { get(&b) } else { vec![] }]);
        }
        for (name, (a, b)) in ["y", "dx", "dw", "db"].iter().zip(outs[0].iter().zip(&outs[1])) {
            assert_close(&format!("fused {act:?} {name} {c:?}"), a, b, TOL);
        }
    }
}

/// The dense op against candle's `matmul(x, wᵀ) + b` in f64: forward and the gradients of a non-linear
/// loss for x, W and b, on both of its paths (dot products below 8 rows, GEMM above), with and without
/// bias, with feature counts that do and do not fill the dot product's 64-wide main loop, its 16-wide loop
/// and its masked tail.
#[test]
fn dense_matches_candle_matmul() {
    let mut rng = StdRng::seed_from_u64(21);
    for &(b, f, u, bias) in &[
        (1, 37, 5, true),
        (1, 300, 13, true),
        (2, 131, 7, false),
        (3, 64, 17, false),
        (7, 33, 9, true),
        (8, 20, 3, true),
        (19, 70, 40, true),
        (64, 48, 31, false),
    ] {
        let (xs, ws, bs) = (randn(&mut rng, (b, f)), randn(&mut rng, (u, f)), randn(&mut rng, u));
        let target = randn(&mut rng, (b, u));
        let mut results = vec![];
        for reference in [false, true] {
            let (x, w, bv) = (
                Var::from_tensor(&xs).unwrap(),
                Var::from_tensor(&ws).unwrap(),
                Var::from_tensor(&bs).unwrap(),
            );
            let y = if reference {
                let to64 = |t: &Tensor| t.to_dtype(DType::F64).unwrap();
                let y = to64(&x).matmul(&to64(&w).t().unwrap()).unwrap();
                if bias {
                    y.broadcast_add(&to64(&bv)).unwrap()
                } else {
                    y
                }
            } else {
                K.dense(&x, &w, bias.then_some(bv.as_tensor()))
                    .unwrap()
                    .to_dtype(DType::F64)
                    .unwrap()
            };
            let loss = (y.tanh().unwrap() - target.to_dtype(DType::F64).unwrap())
                .unwrap()
                .sqr()
                .unwrap()
                .sum_all()
                .unwrap();
            let g = loss.backward().unwrap();
            let db = if bias { vec64(g.get(&bv).unwrap()) } else { vec![] };
            results.push((vec64(&y), vec64(g.get(&x).unwrap()), vec64(g.get(&w).unwrap()), db));
        }
        let (ours, theirs) = (&results[0], &results[1]);
        let case = format!("b{b} f{f} u{u} bias {bias}");
        assert_close(&format!("y {case}"), &ours.0, &theirs.0, TOL);
        assert_close(&format!("dx {case}"), &ours.1, &theirs.1, TOL);
        assert_close(&format!("dw {case}"), &ours.2, &theirs.2, TOL);
        assert_close(&format!("db {case}"), &ours.3, &theirs.3, TOL);
        // The weight gradient is contiguous (the optimiser reads it without a copy).
        let w = Var::from_tensor(&ws).unwrap();
        let g = K.dense(&xs, &w, None).unwrap().sum_all().unwrap().backward().unwrap();
        assert!(g.get(&w).unwrap().is_contiguous(), "{case}");
        assert!(g.get(&xs).is_none(), "{case}: the data input got a gradient");
    }
}

/// The composite op against candle's element-wise ops: values and all three gradients.
#[test]
fn composite_matches_candle_ops() {
    let mut rng = StdRng::seed_from_u64(8);
    let (rs, is) = (randn(&mut rng, (2, 3, 5, 4)), randn(&mut rng, (2, 3, 5, 4)));
    let ms = randn(&mut rng, (2, 1, 5, 4))
        .ge(0.0)
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap();
    let mut results = vec![];
    for reference in [false, true] {
        let (r, i, m) = (
            Var::from_tensor(&rs).unwrap(),
            Var::from_tensor(&is).unwrap(),
            Var::from_tensor(&ms).unwrap(),
        );
        let y = if reference {
            (m.broadcast_mul(&r).unwrap() + m.affine(-1.0, 1.0).unwrap().broadcast_mul(&i).unwrap()).unwrap()
        } else {
            K.composite(&r, &i, &m).unwrap()
        };
        let g = y.sqr().unwrap().sum_all().unwrap().backward().unwrap();
        results.push([
            y.clone(),
            g.get(&r).unwrap().clone(),
            g.get(&i).unwrap().clone(),
            g.get(&m).unwrap().clone(),
        ]);
    }
    for (name, (a, b)) in ["y", "drec", "dimage", "dmask"]
        .iter()
        .zip(results[0].iter().zip(&results[1]))
    {
        assert_close(name, &vec64(a), &vec64(b), TOL);
    }
    assert!(
        K.composite(&rs, &is, &rs).is_err(),
        "a mask with 3 channels must be rejected"
    );
}

/// Batch 1 with more threads than images: the forward pass splits each image (conv2d by output rows,
/// the transposed convolution by output channels, with fused activations and bias). Run in a 4-thread
/// pool so that the split happens on any machine; compared with candle's ops in f64.
#[test]
fn split_batch_one_forward_matches_candle() {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(4).build().unwrap();
    pool.install(|| {
        let mut rng = StdRng::seed_from_u64(13);
        // Large enough for the split (>= 1M multiply-adds per image), odd sizes for ragged pieces.
        let x = randn(&mut rng, (1, 12, 61, 67));
        let (w, b) = (randn(&mut rng, (20, 12, 3, 3)), randn(&mut rng, 20));
        let y = K.conv2d_act(&x, &w, Some(&b), SEED_CONV, Act::LeakyRelu(0.2)).unwrap();
        let to64 = |t: &Tensor| t.to_dtype(DType::F64).unwrap();
        let want = to64(&x)
            .conv2d(&to64(&w), 1, 2, 1, 1)
            .unwrap()
            .broadcast_add(&bias4(&to64(&b)).unwrap())
            .unwrap();
        let want = candle_nn::ops::leaky_relu(&want, 0.2).unwrap();
        assert_close("conv2d split", &vec64(&y), &vec64(&want), TOL);

        let xt = randn(&mut rng, (1, 24, 33, 35)); // 1.25M multiply-adds, 5 channels in 4 pieces
        let (wt, bt) = (randn(&mut rng, (24, 5, 3, 3)), randn(&mut rng, 5));
        let y = K
            .conv_transpose2d_act(&xt, &wt, Some(&bt), SEED_CONV_T, Act::Sigmoid)
            .unwrap();
        let want = to64(&xt)
            .conv_transpose2d(&to64(&wt), 1, 1, 2, 1)
            .unwrap()
            .broadcast_add(&bias4(&to64(&bt)).unwrap())
            .unwrap();
        let want = candle_nn::ops::sigmoid(&want).unwrap();
        assert_close(
            "conv_transpose2d split, 5 channels in 4 pieces",
            &vec64(&y),
            &vec64(&want),
            TOL,
        );

        // 9 channels in 4 pieces, with a LeakyReLU.
        let (wt, bt) = (randn(&mut rng, (24, 9, 3, 3)), randn(&mut rng, 9));
        let y = K
            .conv_transpose2d_act(&xt, &wt, Some(&bt), SEED_CONV_T, Act::LeakyRelu(0.2))
            .unwrap();
        let want = to64(&xt)
            .conv_transpose2d(&to64(&wt), 1, 1, 2, 1)
            .unwrap()
            .broadcast_add(&bias4(&to64(&bt)).unwrap())
            .unwrap();
        let want = candle_nn::ops::leaky_relu(&want, 0.2).unwrap();
        assert_close(
            "conv_transpose2d split, 9 channels in 4 pieces",
            &vec64(&y),
            &vec64(&want),
            TOL,
        );
    });
}

/// `with_spinning_helpers` returns what its function returns, the helpers take part in the function's
/// parallel work, and it does not deadlock with nested joins, with more helpers than the pool has spare
/// threads (the extra helper jobs are left for the owner thread, which must skip them), or when called
/// again and again (each call's helpers must have stopped).
#[test]
fn spinning_helpers_share_the_work_and_stop() {
    use std::collections::HashSet;
    use std::sync::Mutex;
    fn tree_sum(lo: u64, hi: u64, seen: &Mutex<HashSet<usize>>) -> u64 {
        if hi - lo <= 1000 {
            seen.lock()
                .unwrap()
                .insert(rayon::current_thread_index().unwrap_or(usize::MAX));
            // Some work per leaf, so that an idle helper has time to steal the other half.
            return (lo..hi).map(std::hint::black_box).sum();
        }
        let mid = (lo + hi) / 2;
        let (a, b) = rayon::join(|| tree_sum(lo, mid, seen), || tree_sum(mid, hi, seen));
        a + b
    }
    let n = 2_000_000u64;
    for (threads, helpers) in [(4, 3), (2, 8), (3, 0)] {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        for _ in 0..20 {
            let seen = Mutex::new(HashSet::new());
            let total = pool.install(|| with_spinning_helpers(helpers, || tree_sum(0, n, &seen)));
            assert_eq!(total, n * (n - 1) / 2, "{threads} threads, {helpers} helpers");
        }
        let seen = Mutex::new(HashSet::new());
        pool.install(|| with_spinning_helpers(helpers, || tree_sum(0, 20 * n, &seen)));
        assert!(
            seen.lock().unwrap().len() >= 2,
            "{threads} threads, {helpers} helpers: one thread did all the work"
        );
    }
}

/// Layers whose column matrix is larger than one band (`kernels::COL_CHUNK`): conv2d (stride 1, dilated,
/// strided) and conv_transpose2d, one image (split over the threads too) and several, with and without a
/// fused LeakyReLU, against the naive f64 loops: forward, dx, dW and the bias gradient.
#[test]
fn banded_column_matrices_match_naive_loops() {
    let mut rng = StdRng::seed_from_u64(23);
    let base = Case {
        n: 1,
        ci: 16,
        co: 4,
        h: 48,
        w: 40,
        k: 3,
        s: 1,
        p: 1,
        d: 1,
        op: 0,
        transpose: false,
        bias: true,
    };
    let cases = [
        base,
        Case {
            n: 3,
            p: 2,
            d: 2,
            ..base
        },
        Case {
            n: 2,
            s: 2,
            h: 96,
            w: 80,
            ..base
        },
        Case {
            n: 1,
            ci: 4,
            co: 32,
            h: 24,
            w: 20,
            s: 2,
            op: 1,
            transpose: true,
            ..base
        },
        Case {
            n: 3,
            ci: 4,
            co: 32,
            h: 24,
            w: 20,
            s: 2,
            op: 1,
            transpose: true,
            ..base
        },
    ];
    for (i, c) in cases.into_iter().enumerate() {
        let g = if c.transpose {
            let (oh, ow) = c.out_hw();
            (c.co * c.k * c.k, c.h * c.w, oh, ow)
        } else {
            let (oh, ow) = c.out_hw();
            (c.ci * c.k * c.k, oh * ow, oh, ow)
        };
        assert!(g.0 * g.1 > 1 << 17, "case {i} must need several bands: {c:?}");
        check_against_naive(&mut rng, c, i % 2 == 0, "banded");
    }
}

/// One convolution (fused with a LeakyReLU or not) against the naive f64 loops: forward, dx, dW, dbias.
fn check_against_naive(rng: &mut StdRng, c: Case, fused: bool, what: &str) {
    let x = Var::from_tensor(&randn(rng, c.x_dims())).unwrap();
    let w = Var::from_tensor(&(randn(rng, c.w_dims()) * 0.1).unwrap()).unwrap();
    let b = Var::from_tensor(&randn(rng, c.co)).unwrap();
    let act = Act::LeakyRelu(0.2);
    let y = match (fused, c.transpose) {
        (true, false) => K.conv2d_act(&x, &w, Some(&b), c.params(), act),
        (true, true) => K.conv_transpose2d_act(&x, &w, Some(&b), c.params(), act),
        (false, _) => c.run(&x, &w, Some(&b)),
    }
    .unwrap();
    let r = randn(rng, y.shape());
    let grads = (&y * &r).unwrap().sum_all().unwrap().backward().unwrap();
    let (x64, w64, b64, r64) = (vec64(&x), vec64(&w), vec64(&b), vec64(&r));
    let [pre, mut dx_ref, mut dw_ref, mut db_ref] = naive(&c, &x64, &w64, &b64, &r64);
    let mut y_ref = pre.clone();
    if fused {
        // LeakyReLU: y = pre or 0.2 pre; the gradient through it scales r the same way.
        let slope = |p: f64| if p > 0.0 { 1.0 } else { 0.2 };
        y_ref = pre.iter().map(|&p| p * slope(p)).collect();
        let r_pre: Vec<f64> = r64.iter().zip(&pre).map(|(r, &p)| r * slope(p)).collect();
        [_, dx_ref, dw_ref, db_ref] = naive(&c, &x64, &w64, &b64, &r_pre);
    }
    assert_close(&format!("{what} y {c:?}"), &vec64(&y), &y_ref, TOL);
    assert_close(
        &format!("{what} dx {c:?}"),
        &vec64(grads.get(&x).unwrap()),
        &dx_ref,
        TOL,
    );
    assert_close(
        &format!("{what} dw {c:?}"),
        &vec64(grads.get(&w).unwrap()),
        &dw_ref,
        TOL,
    );
    assert_close(
        &format!("{what} db {c:?}"),
        &vec64(grads.get(&b).unwrap()),
        &db_ref,
        TOL,
    );
}

/// Stride-1 convolutions without a column matrix (`kernels::Shifted`: the shifted GEMMs, and for at most 3
/// small channels the direct AVX-512 kernels): conv2d with odd and even sizes, padding 0-2, dilation 1-2,
/// batch 1 and 3, 3 and 6 output channels, fused or not, and a stride-1 conv_transpose2d (its input
/// gradient and dW take the shifted path), against the naive f64 loops.
#[test]
fn shifted_image_convolutions_match_naive_loops() {
    let mut rng = StdRng::seed_from_u64(29);
    let base = Case {
        n: 1,
        ci: 5,
        co: 3,
        h: 9,
        w: 16,
        k: 3,
        s: 1,
        p: 1,
        d: 1,
        op: 0,
        transpose: false,
        bias: true,
    };
    let cases = [
        base,
        Case {
            n: 3,
            h: 7,
            w: 17,
            ..base
        },
        Case {
            n: 3,
            ci: 19,
            co: 6,
            h: 11,
            w: 33,
            ..base
        },
        Case {
            n: 1,
            co: 6,
            h: 13,
            w: 33,
            p: 2,
            d: 2,
            ..base
        },
        Case {
            n: 3,
            co: 2,
            h: 10,
            w: 37,
            p: 2,
            d: 2,
            ..base
        },
        Case {
            n: 3,
            ci: 9,
            co: 1,
            h: 6,
            w: 19,
            p: 0,
            ..base
        },
        Case {
            n: 1,
            ci: 20,
            co: 3,
            h: 70,
            w: 64,
            ..base
        },
        Case {
            n: 3,
            ci: 6,
            co: 4,
            h: 8,
            w: 24,
            transpose: true,
            ..base
        },
    ];
    for (i, c) in cases.into_iter().enumerate() {
        // The geometry the kernels see (conv_transpose2d: the output is the big side).
        let (oh, ow) = c.out_hw();
        let g = if c.transpose {
            kernels::test_geom(c.co, oh, ow, c.ci, c.h, c.w, c.k, c.p, c.d)
        } else {
            kernels::test_geom(c.ci, c.h, c.w, c.co, oh, ow, c.k, c.p, c.d)
        };
        assert!(
            kernels::takes_shifted_path(&g),
            "case {i} must take the shifted path: {c:?}"
        );
        check_against_naive(&mut rng, c, i % 2 == 1, "shifted");
    }
}

/// Strided convolutions on the implicit GEMM (`implicit::Implicit`): conv2d and conv_transpose2d with odd
/// and even sizes, padding 0-2, dilation 2, stride 3, batch 1-3, 1-13 channels (row blocks on and off the
/// kernels' tiles), fused or not, and stride-1 conv2d (forward on the implicit path), against the naive f64
/// loops, each case asserted to be one the implicit path takes.
#[test]
fn implicit_strided_convolutions_match_naive_loops() {
    // Also the few-channel cases that production sends to the column matrix (other tests running
    // meanwhile may take either path: both are exact up to rounding).
    implicit::FORCE.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut rng = StdRng::seed_from_u64(31);
    let base = Case {
        n: 2,
        ci: 3,
        co: 7,
        h: 40,
        w: 36,
        k: 3,
        s: 2,
        p: 1,
        d: 1,
        op: 0,
        transpose: false,
        bias: true,
    };
    let cases = [
        base,
        Case {
            n: 3,
            h: 37,
            w: 41,
            ..base
        },
        Case {
            ci: 5,
            co: 1,
            h: 35,
            w: 33,
            p: 0,
            ..base
        },
        Case {
            n: 3,
            ci: 2,
            co: 13,
            h: 38,
            w: 50,
            p: 2,
            d: 2,
            ..base
        },
        Case {
            ci: 4,
            co: 6,
            h: 50,
            w: 52,
            s: 3,
            p: 2,
            ..base
        },
        Case {
            n: 2,
            ci: 6,
            co: 3,
            h: 17,
            w: 16,
            op: 1,
            transpose: true,
            ..base
        },
        Case {
            n: 3,
            ci: 7,
            co: 5,
            h: 9,
            w: 19,
            p: 0,
            op: 1,
            transpose: true,
            ..base
        },
        Case {
            n: 1,
            ci: 4,
            co: 2,
            h: 11,
            w: 17,
            p: 2,
            op: 0,
            transpose: true,
            ..base
        },
        Case {
            n: 2,
            ci: 3,
            co: 4,
            h: 8,
            w: 16,
            s: 3,
            p: 1,
            op: 2,
            transpose: true,
            ..base
        },
        // Stride 1 (the forward pass of `Implicit::stride1_forward`; its gradients take the shifted GEMMs).
        Case {
            n: 2,
            ci: 5,
            co: 7,
            h: 19,
            w: 48,
            s: 1,
            ..base
        },
        Case {
            n: 3,
            ci: 2,
            co: 13,
            h: 21,
            w: 17,
            s: 1,
            p: 2,
            d: 2,
            ..base
        },
        Case {
            n: 1,
            ci: 6,
            co: 2,
            h: 9,
            w: 20,
            s: 1,
            p: 0,
            ..base
        },
    ];
    for (i, c) in cases.into_iter().enumerate() {
        let (oh, ow) = c.out_hw();
        let g = if c.transpose {
            geom::Geom {
                big_c: c.co,
                big_h: oh,
                big_w: ow,
                small_c: c.ci,
                small_h: c.h,
                small_w: c.w,
                kh: c.k,
                kw: c.k,
                stride: c.s,
                pad: c.p,
                dil: c.d,
            }
        } else {
            geom::Geom {
                big_c: c.ci,
                big_h: c.h,
                big_w: c.w,
                small_c: c.co,
                small_h: oh,
                small_w: ow,
                kh: c.k,
                kw: c.k,
                stride: c.s,
                pad: c.p,
                dil: c.d,
            }
        };
        let w = vec![0f32; g.small_c * g.col_rows()];
        assert!(
            implicit::Implicit::build(&g, &w).is_some() && (c.s > 1 || implicit::Implicit::stride1_forward(&g)),
            "case {i} must take the implicit path: {c:?}"
        );
        check_against_naive(&mut rng, c, i % 2 == 1, "implicit");
    }
}

/// A benchmark of the implicit path against the column matrix on the seed's and the unet's strided layers
/// (batch 64, forward and backward, medians of 5 interleaved rounds): `cargo test --release -p
/// facerecon-model --lib implicit_vs_column -- --ignored --nocapture`.
#[test]
#[ignore]
fn implicit_vs_column_matrix_bench() {
    use kernels::{Side, Wanted};
    use std::time::Instant;
    let act = Act::LeakyRelu(0.2);
    // (name, transposed, big_c, small_c, small side, input gradient wanted)
    let layers = [
        ("enc1", false, 3, 32, 64, false),
        ("enc2", false, 32, 64, 32, true),
        ("enc3", false, 64, 64, 16, true),
        ("dec2", true, 64, 64, 16, true),
        ("dec3", true, 32, 64, 32, true),
        ("dec4", true, 3, 32, 64, true),
        ("e1", false, 4, 32, 64, false),
        ("e2", false, 32, 64, 32, true),
        ("e3", false, 64, 128, 16, true),
        ("d3", true, 64, 128, 16, true),
        ("d2", true, 32, 64, 32, true),
        ("d1", true, 16, 32, 64, true),
    ];
    let n = 64;
    let mut rng = StdRng::seed_from_u64(1);
    for (name, transpose, big_c, small_c, side, input) in layers {
        let g = geom::Geom::stride2_3x3(big_c, small_c, side);
        let r = |len: usize, rng: &mut StdRng| (0..len).map(|_| rng.gen_range(-1.0f32..1.0)).collect::<Vec<f32>>();
        let (big, small, w) = (
            r(n * g.big_len(), &mut rng),
            r(n * g.small_len(), &mut rng),
            r(g.small_c * g.col_rows(), &mut rng),
        );
        let (out_side, in_side) = if transpose {
            (Side::Big, Side::Small)
        } else {
            (Side::Small, Side::Big)
        };
        let out = if transpose { &big } else { &small };
        let want = Wanted {
            weight: true,
            input: input.then_some(in_side),
            bias: Some(out_side),
        };
        let fa = kernels::FusedAct {
            out,
            act,
            side: out_side,
        };
        let mut times = [[vec![], vec![]], [vec![], vec![]]];
        for rep in 0..6 {
            for off in [false, true] {
                implicit::DISABLED.store(off, std::sync::atomic::Ordering::Relaxed);
                let t0 = Instant::now();
                let y = if transpose {
                    kernels::small_to_big(&g, n, &small, &w, None, Some(act))
                } else {
                    kernels::big_to_small(&g, n, &big, &w, None, Some(act))
                };
                let t1 = Instant::now();
                let gr = kernels::backward(&g, n, &big, &small, &w, want, Some(fa));
                let t2 = Instant::now();
                std::hint::black_box((y, gr.dw));
                if rep > 0 {
                    times[off as usize][0].push((t1 - t0).as_secs_f64() * 1e3);
                    times[off as usize][1].push((t2 - t1).as_secs_f64() * 1e3);
                }
            }
        }
        implicit::DISABLED.store(false, std::sync::atomic::Ordering::Relaxed);
        let med = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let [[mut fi, mut bi], [mut fc, mut bc]] = times;
        let (fi, bi, fc, bc) = (med(&mut fi), med(&mut bi), med(&mut fc), med(&mut bc));
        println!(
            "{name:>5}: fwd implicit {fi:6.1} ms / columns {fc:6.1} ms ({:.2}x) | bwd {bi:6.1} / {bc:6.1} ({:.2}x)",
            fc / fi,
            bc / bi
        );
    }
}
