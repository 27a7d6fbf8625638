//! conv2d and conv_transpose2d as candle custom ops (forward + backward) over [`super::kernels`].
use super::geom::Geom;
use super::kernels::{self, Side, Wanted};
use super::{cpu_f32, tensor_f32};
use candle_core::{bail, CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};

/// Hyper-parameters of one convolution (square kernels' parameters apply to both axes).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct ConvOp {
    /// Stride, padding, dilation and (transposed convolutions) output padding.
    pub params: crate::layers::ConvParams,
    /// conv_transpose2d (weight `[c_in, c_out, kh, kw]`) rather than conv2d (`[c_out, c_in, kh, kw]`).
    pub transpose: bool,
    /// A fused activation on the output (LeakyReLU slopes `>= 0` only).
    pub act: Option<super::Act>,
}

impl ConvOp {
    fn name(&self) -> &'static str {
        use super::Act;
        match (self.transpose, self.act) {
            (true, None) => "facerecon-conv-transpose2d",
            (true, Some(Act::LeakyRelu(_))) => "facerecon-conv-transpose2d-leaky-relu",
            (true, Some(Act::Sigmoid)) => "facerecon-conv-transpose2d-sigmoid",
            (false, None) => "facerecon-conv2d",
            (false, Some(Act::LeakyRelu(_))) => "facerecon-conv2d-leaky-relu",
            (false, Some(Act::Sigmoid)) => "facerecon-conv2d-sigmoid",
        }
    }

    /// The geometry and batch size for input dims `x` and weight dims `w`.
    fn geom(&self, x: &[usize], w: &[usize]) -> Result<(Geom, usize)> {
        let (&[n, c, h, wd], &[w0, w1, kh, kw]) = (x, w) else {
            bail!("{}: expected 4-d input and weight, got {x:?} and {w:?}", self.name())
        };
        let w_in = if self.transpose { w0 } else { w1 };
        if c != w_in {
            bail!(
                "{}: input has {c} channels but the weight {w:?} expects {w_in}",
                self.name()
            )
        }
        let crate::layers::ConvParams {
            stride: s,
            padding: p,
            dilation: d,
            output_padding: out_pad,
        } = self.params;
        if s == 0 || d == 0 || kh == 0 || kw == 0 {
            bail!("{}: stride, dilation and kernel size must be positive", self.name())
        }
        let g = if self.transpose {
            if out_pad >= s.max(d) {
                bail!(
                    "{}: output padding {out_pad} must be smaller than stride or dilation",
                    self.name(),
                )
            }
            let out = |i: usize, k: usize| ((i - 1) * s + d * (k - 1) + out_pad + 1).checked_sub(2 * p);
            let (Some(oh), Some(ow)) = (out(h, kh), out(wd, kw)) else {
                bail!("{}: padding {p} too large for input {x:?}", self.name())
            };
            Geom {
                big_c: w1,
                big_h: oh,
                big_w: ow,
                small_c: c,
                small_h: h,
                small_w: wd,
                kh,
                kw,
                stride: s,
                pad: p,
                dil: d,
            }
        } else {
            let out = |i: usize, k: usize| (i + 2 * p).checked_sub(d * (k - 1) + 1).map(|v| v / s + 1);
            let (Some(oh), Some(ow)) = (out(h, kh), out(wd, kw)) else {
                bail!(
                    "{}: kernel {kh}x{kw} (dilation {d}) larger than padded input {x:?}",
                    self.name()
                )
            };
            Geom {
                big_c: c,
                big_h: h,
                big_w: wd,
                small_c: w0,
                small_h: oh,
                small_w: ow,
                kh,
                kw,
                stride: s,
                pad: p,
                dil: d,
            }
        };
        Ok((g, n))
    }

    fn out_shape(&self, g: &Geom, n: usize) -> Shape {
        if self.transpose {
            (n, g.big_c, g.big_h, g.big_w).into()
        } else {
            (n, g.small_c, g.small_h, g.small_w).into()
        }
    }

    fn forward(
        &self,
        x: &[f32],
        xl: &Layout,
        w: &[f32],
        wl: &Layout,
        b: Option<&[f32]>,
    ) -> Result<(CpuStorage, Shape)> {
        let (g, n) = self.geom(xl.dims(), wl.dims())?;
        let bias_c = if self.transpose { g.big_c } else { g.small_c };
        if let Some(b) = b {
            if b.len() != bias_c {
                bail!("{}: bias has {} elements, expected {bias_c}", self.name(), b.len())
            }
        }
        let out = if self.transpose {
            kernels::small_to_big(&g, n, x, w, b, self.act)
        } else {
            kernels::big_to_small(&g, n, x, w, b, self.act)
        };
        Ok((CpuStorage::F32(out), self.out_shape(&g, n)))
    }

    /// Gradients for (x, w, b); `None` for arguments that do not lead to a variable (e.g. the input image).
    fn backward(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: Option<&Tensor>,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<[Option<Tensor>; 3]> {
        let (x, w, grad, res) = (x.contiguous()?, w.contiguous()?, grad.contiguous()?, res.contiguous()?);
        let (g, n) = self.geom(x.dims(), w.dims())?;
        let (in_side, out_side) = if self.transpose {
            (Side::Small, Side::Big)
        } else {
            (Side::Big, Side::Small)
        };
        let want = Wanted {
            weight: w.track_op(),
            input: x.track_op().then_some(in_side),
            bias: b.filter(|b| b.track_op()).map(|_| out_side),
        };
        let (xg, xl) = x.storage_and_layout();
        let (wg, wl) = w.storage_and_layout();
        let (gg, gl) = grad.storage_and_layout();
        let (xs, ws, gs) = (tensor_f32(&xg, xl)?, tensor_f32(&wg, wl)?, tensor_f32(&gg, gl)?);
        let (big, small) = if self.transpose { (gs, xs) } else { (xs, gs) };
        let (rg, rl) = res.storage_and_layout();
        let act = match self.act {
            Some(act) => Some(kernels::FusedAct {
                out: tensor_f32(&rg, rl)?,
                act,
                side: out_side,
            }),
            None => None,
        };
        let grads = kernels::backward(&g, n, big, small, ws, want, act);
        let dev = x.device();
        Ok([
            grads.dinput.map(|v| Tensor::from_vec(v, x.shape(), dev)).transpose()?,
            grads.dw.map(|v| Tensor::from_vec(v, w.shape(), dev)).transpose()?,
            grads
                .dbias
                .map(|v| Tensor::from_vec(v, v_len_shape(b), dev))
                .transpose()?,
        ])
    }
}

fn v_len_shape(b: Option<&Tensor>) -> Shape {
    b.map(|b| b.shape().clone()).unwrap_or_else(|| Shape::from(0))
}

impl CustomOp2 for ConvOp {
    fn name(&self) -> &'static str {
        ConvOp::name(self)
    }

    fn cpu_fwd(&self, xs: &CpuStorage, xl: &Layout, ws: &CpuStorage, wl: &Layout) -> Result<(CpuStorage, Shape)> {
        self.forward(cpu_f32(xs, xl)?, xl, cpu_f32(ws, wl)?, wl, None)
    }

    fn bwd(&self, x: &Tensor, w: &Tensor, res: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let [dx, dw, _] = self.backward(x, w, None, res, grad)?;
        Ok((dx, dw))
    }
}

impl CustomOp3 for ConvOp {
    fn name(&self) -> &'static str {
        ConvOp::name(self)
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        self.forward(cpu_f32(xs, xl)?, xl, cpu_f32(ws, wl)?, wl, Some(cpu_f32(bs, bl)?))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let [dx, dw, db] = self.backward(x, w, Some(b), res, grad)?;
        Ok((dx, dw, db))
    }
}
