//! [`Runtime`]: one validated ONNX Runtime session plus the batching around it.

use std::{
    collections::BTreeMap,
    fmt,
    path::{Path, PathBuf},
    sync::Mutex,
};

use image::{GrayImage, RgbImage};
use ort::{
    ep,
    session::{builder::GraphOptimizationLevel, Session},
    session::{HasSelectedOutputs, OutputSelector, RunOptions},
    value::{TensorElementType, TensorRef, ValueType},
};
use rayon::prelude::*;

use crate::{
    model::ModelInfo,
    ort_env,
    pipeline::{self, Prepared},
    Device, OptimizationLevel, RuntimeError, RuntimeOptions,
};

/// Input and output names of the model-file contract (DESIGN.md), defined in `facerecon-contract`.
pub use facerecon_contract::names;

/// The execution provider a [`Runtime`] runs on (the one asked for: registration failures are errors).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Provider {
    /// `CPUExecutionProvider`.
    Cpu,
    /// `CUDAExecutionProvider` on this device.
    Cuda(i32),
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Provider::Cpu => f.write_str("CPUExecutionProvider"),
            Provider::Cuda(id) => write!(f, "CUDAExecutionProvider (device {id})"),
        }
    }
}

/// A loaded, validated model. `Sync`: calls from several threads share the session one run at a time.
pub struct Runtime {
    session: Mutex<Ort>,
    /// Batch input buffers reused by [`Runtime::infer`]: a fresh multi-megabyte `Vec` per call costs
    /// a page fault per 4 KiB page on first touch, which at batch 64 is several milliseconds.
    scratch: Mutex<Scratch>,
    info: ModelInfo,
    provider: Provider,
    options: RuntimeOptions,
    path: PathBuf,
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("path", &self.path)
            .field("provider", &self.provider)
            .field("info", &self.info)
            .finish()
    }
}

impl Runtime {
    /// Load ONNX Runtime (first call only), open `path` and check it against the model-file contract:
    /// inputs `image` `[N,3,S,S]` and `mask` `[N,1,S,S]` (f32), outputs `reconstruction` and `inpainted`.
    pub fn load(path: impl AsRef<Path>, options: &RuntimeOptions) -> Result<Runtime, RuntimeError> {
        let path = path.as_ref();
        let invalid = |msg: String| RuntimeError::InvalidModel {
            path: path.to_path_buf(),
            msg,
        };
        if !path.is_file() {
            return Err(invalid(if path.exists() {
                "not a file".into()
            } else {
                "no such file".into()
            }));
        }
        // Read once, check, and hand ORT these same bytes (no second read that could see another file).
        let bytes = read_model_bytes(path).map_err(invalid)?;
        Runtime::from_bytes(&bytes, path, options)
    }

    /// [`Runtime::load`] of a model file already in memory, with the same checks; `path` only names it
    /// in errors and in [`Runtime::path`]. The exporter verifies the file it is about to write this way,
    /// so that a model the runtime would refuse is never written.
    pub fn from_bytes(bytes: &[u8], path: impl AsRef<Path>, options: &RuntimeOptions) -> Result<Runtime, RuntimeError> {
        let path = path.as_ref();
        let invalid = |msg: String| RuntimeError::InvalidModel {
            path: path.to_path_buf(),
            msg,
        };
        if bytes.len() as u64 > crate::model::MAX_FILE_BYTES {
            return Err(invalid(format!(
                "it is {} bytes, more than the 2 GiB an ONNX file can hold",
                bytes.len()
            )));
        }
        crate::model::scan_onnx(bytes).map_err(invalid)?;
        let env = ort_env::environment(options.ort_library.as_deref())?;
        let ort_err =
            |e: ort::Error<ort::session::builder::SessionBuilder>| RuntimeError::ort("configuring the session", e);

        let mut builder = Session::builder(env)
            .map_err(|e| RuntimeError::ort("creating a session", e))?
            .with_optimization_level(match options.optimization_level {
                OptimizationLevel::Disable => GraphOptimizationLevel::Disable,
                OptimizationLevel::Basic => GraphOptimizationLevel::Level1,
                OptimizationLevel::Extended => GraphOptimizationLevel::Level2,
                OptimizationLevel::All => GraphOptimizationLevel::All,
            })
            .map_err(ort_err)?;
        if let Some(threads) = options.threads {
            builder = builder.with_intra_threads(threads.max(1)).map_err(ort_err)?;
        }
        // Spelled out to match the Python reference (benches/ort_py_bench.py) rather than relying on
        // defaults: one graph at a time, no inter-op pool (our graph is a single chain anyway).
        builder = builder
            .with_parallel_execution(false)
            .map_err(ort_err)?
            .with_inter_threads(1)
            .map_err(ort_err)?;
        let provider = match options.device {
            Device::Cpu => Provider::Cpu,
            Device::Cuda(id) => {
                let cuda = ep::CUDA::default().with_device_id(id).build().error_on_failure();
                builder = builder.with_execution_providers([cuda]).map_err(|e| RuntimeError::Provider {
                    provider: format!("CUDA:{id}"),
                    msg: format!("{e} (needed: a GPU build of ONNX Runtime — `make setup-gpu`, then ORT_DYLIB_PATH=the library `scripts/setup-ort.sh gpu` prints — and the CUDA 13 and cuDNN 9 libraries on the loader path, e.g. LD_LIBRARY_PATH=<python site-packages>/nvidia/cu13/lib)"),
                })?;
                Provider::Cuda(id)
            }
        };
        let session = builder
            .commit_from_memory(bytes)
            .map_err(|e| invalid(format!("ONNX Runtime cannot load it: {e}")))?;
        let info = validate(&session).map_err(invalid)?;
        let run_options = |outputs: &[&str]| -> Result<RunOptions<HasSelectedOutputs>, RuntimeError> {
            let selector = outputs
                .iter()
                .fold(OutputSelector::no_default(), |selector, name| selector.with(*name));
            Ok(RunOptions::new()
                .map_err(|e| RuntimeError::ort("creating run options", e))?
                .with_outputs(selector))
        };
        let reconstruction_only = run_options(&[names::RECONSTRUCTION])?;
        let both = run_options(&[names::RECONSTRUCTION, names::INPAINTED])?;
        Ok(Runtime {
            session: Mutex::new(Ort {
                session,
                reconstruction_only,
                both,
            }),
            scratch: Mutex::new(Scratch::default()),
            info,
            provider,
            options: options.clone(),
            path: path.to_path_buf(),
        })
    }

    /// What the model file says about itself.
    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// The execution provider in use.
    pub fn provider(&self) -> Provider {
        self.provider
    }

    /// The model file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Images per `session.run`: the options' batch size, or the model's fixed batch.
    pub fn batch_size(&self) -> usize {
        self.info.fixed_batch.unwrap_or(self.options.batch_size.max(1))
    }

    /// Fit one image and its mask (same size, 255 = hole) to the model's input ([`pipeline::prepare`]).
    pub fn prepare(&self, image: &RgbImage, mask: &GrayImage) -> Result<Prepared, RuntimeError> {
        pipeline::prepare(image, mask, self.info.image_size, self.options.fit)
    }

    /// Run the network on prepared images (any number, grouped into [`Self::batch_size`] runs); returns
    /// one `[3,S,S]` reconstruction per input, empty for inputs without a hole (nothing is run for those).
    ///
    /// Fails as a whole when any reconstruction is not finite ([`Self::infer_each`] reports that per
    /// item).
    pub fn infer(&self, prepared: &[&Prepared]) -> Result<Vec<Vec<f32>>, RuntimeError> {
        self.infer_each(prepared)?.into_iter().collect()
    }

    /// [`Self::infer`] with a result per item: the outer error fails the whole call (bad tensors, an
    /// ONNX Runtime failure), an inner one only its item — a reconstruction holding NaN or infinity
    /// (NaN or overflowing weights), which would otherwise be written as black or saturated holes.
    pub fn infer_each(&self, prepared: &[&Prepared]) -> Result<Vec<Result<Vec<f32>, RuntimeError>>, RuntimeError> {
        let s = self.info.image_size as usize;
        let (image_len, mask_len) = (3 * s * s, s * s);
        for p in prepared.iter().filter(|p| p.has_hole()) {
            if p.image.len() != image_len || p.mask.len() != mask_len {
                return Err(RuntimeError::Inference(format!(
                    "prepared tensors have {} / {} values, the model needs {image_len} / {mask_len}",
                    p.image.len(),
                    p.mask.len()
                )));
            }
        }
        let mut out: Vec<Result<Vec<f32>, RuntimeError>> = (0..prepared.len()).map(|_| Ok(Vec::new())).collect();
        let todo: Vec<usize> = (0..prepared.len()).filter(|&i| prepared[i].has_hole()).collect();
        let inputs = Inputs::Items {
            items: prepared,
            todo: &todo,
        };
        // Each item's reconstruction is copied once, straight out of ONNX Runtime's output.
        self.run_batches(inputs, self.batch_size(), false, &mut |k, rec, _| {
            out[todo[k]] = self.finite(rec.to_vec());
        })?;
        Ok(out)
    }

    /// `rec` if every value is finite, else an error naming the model. One pass over one image's
    /// `3*S*S` values (about 10 µs at 128x128, against milliseconds for the network).
    fn finite(&self, rec: Vec<f32>) -> Result<Vec<f32>, RuntimeError> {
        let bad = rec.iter().filter(|v| !v.is_finite()).count();
        if bad == 0 {
            return Ok(rec);
        }
        Err(RuntimeError::Inference(format!(
            "model {} returned {bad} non-finite values (NaN or infinity) of {} for this image: its weights are broken or overflow; nothing was written for it",
            self.path.display(),
            rec.len()
        )))
    }

    /// The options the runtime was loaded with.
    pub fn options(&self) -> &RuntimeOptions {
        &self.options
    }

    /// Map a reconstruction back onto the original ([`pipeline::finish_feathered`] with the options'
    /// `feather`): only hole pixels change.
    pub fn finish(
        &self,
        original: &RgbImage,
        mask: &GrayImage,
        prepared: &Prepared,
        reconstruction: &[f32],
    ) -> Result<RgbImage, RuntimeError> {
        pipeline::finish_feathered(
            original,
            mask,
            prepared,
            reconstruction,
            self.info.image_size,
            self.options.feather,
        )
    }

    /// [`Self::finish`] into `original` itself ([`pipeline::finish_in_place`] with the options'
    /// `feather`): its hole pixels are replaced, nothing is copied. On an error `original` is
    /// unchanged.
    pub fn finish_in_place(
        &self,
        original: &mut RgbImage,
        mask: &GrayImage,
        prepared: &Prepared,
        reconstruction: &[f32],
    ) -> Result<(), RuntimeError> {
        pipeline::finish_in_place(
            original,
            mask,
            prepared,
            reconstruction,
            self.info.image_size,
            self.options.feather,
        )
    }

    /// Reconstruct the holes of one image (mask at the image's size, 255 = hole). The result has the
    /// image's size; pixels outside the hole are bit-identical to the input.
    pub fn reconstruct(&self, image: &RgbImage, mask: &GrayImage) -> Result<RgbImage, RuntimeError> {
        let mut out = image.clone();
        self.reconstruct_in_place(&mut out, mask)?;
        Ok(out)
    }

    /// [`Self::reconstruct`] into `image` itself: its hole pixels are replaced, its known pixels are
    /// not written. What camera software wants (the frame buffer is updated, no 6 MB copy of a
    /// 1920x1080 frame per call). On an error `image` is unchanged.
    pub fn reconstruct_in_place(&self, image: &mut RgbImage, mask: &GrayImage) -> Result<(), RuntimeError> {
        self.reconstruct_found(image, mask, None)
    }

    /// [`Self::reconstruct_in_place`] when the caller knows where the hole is (a face detector's
    /// box, the area the app blanked): `hole_box` is a rectangle of the image that holds every hole
    /// pixel of `mask`, tight or with a margin. The mask is then read only inside the box and on the
    /// one-pixel ring around it (not all 2 MB of a 1920x1080 mask); the result is the one
    /// [`Self::reconstruct_in_place`] writes. A box that is empty or not inside the image, or that
    /// cuts the hole (a hole pixel on its ring), is a [`RuntimeError::HoleBox`] and leaves `image`
    /// unchanged; hole pixels farther out are not looked at and stay as they are
    /// ([`pipeline::check_hole_box`]).
    pub fn reconstruct_in_place_in_box(
        &self,
        image: &mut RgbImage,
        mask: &GrayImage,
        hole_box: pipeline::Region,
    ) -> Result<(), RuntimeError> {
        self.reconstruct_found(image, mask, Some(hole_box))
    }

    /// [`Self::reconstruct_in_place`] (`hole_box` `None`) or [`Self::reconstruct_in_place_in_box`].
    fn reconstruct_found(
        &self,
        image: &mut RgbImage,
        mask: &GrayImage,
        hole_box: Option<pipeline::Region>,
    ) -> Result<(), RuntimeError> {
        let size = self.info.image_size;
        // The holes' bounding box found by `prepare` saves `finish` a second pass over the mask.
        let (prepared, hole) = pipeline::prepare_found(image, mask, size, self.options.fit, hole_box)?;
        let rec = self.infer(&[&prepared])?;
        let search = pipeline::HoleSearch::Known(hole);
        pipeline::finish_in_place_found(image, mask, &prepared, &rec[0], size, self.options.feather, search)
    }

    /// [`Self::reconstruct`] for many images: pre-processing runs in parallel (rayon), one batch ahead
    /// of the batch ONNX Runtime is working on. Fails on the first bad item; callers that need
    /// per-item errors use [`Self::prepare`] / [`Self::infer`] / [`Self::finish`] directly.
    pub fn reconstruct_batch(&self, items: &[(RgbImage, GrayImage)]) -> Result<Vec<RgbImage>, RuntimeError> {
        let prepare_chunk = |chunk: &[(RgbImage, GrayImage)]| -> Result<Vec<Prepared>, RuntimeError> {
            chunk
                .par_iter()
                .map(|(image, mask)| self.prepare(image, mask))
                .collect()
        };
        let chunks: Vec<&[(RgbImage, GrayImage)]> = items.chunks(self.batch_size()).collect();
        let mut results = Vec::with_capacity(items.len());
        let mut next = chunks.first().map(|c| prepare_chunk(c));
        for (k, chunk) in chunks.iter().enumerate() {
            let prepared = next.take().expect("prepared one chunk ahead")?;
            let following = chunks.get(k + 1);
            let (ran, ahead) = rayon::join(
                || self.infer(&prepared.iter().collect::<Vec<_>>()),
                || following.map(|c| prepare_chunk(c)),
            );
            next = ahead;
            let recs = ran?;
            let finished: Result<Vec<RgbImage>, RuntimeError> = chunk
                .par_iter()
                .zip(prepared.par_iter().zip(recs.par_iter()))
                .map(|((image, mask), (p, rec))| self.finish(image, mask, p, rec))
                .collect();
            results.extend(finished?);
        }
        Ok(results)
    }

    /// [`Self::reconstruct_batch`] into the images themselves: their hole pixels are replaced, no
    /// image is copied. On an error, the images of the batches before the failing one are already
    /// reconstructed; the rest are unchanged.
    pub fn reconstruct_batch_in_place(&self, items: &mut [(RgbImage, GrayImage)]) -> Result<(), RuntimeError> {
        let prepare_chunk = |chunk: &[(RgbImage, GrayImage)]| -> Result<Vec<Prepared>, RuntimeError> {
            chunk
                .par_iter()
                .map(|(image, mask)| self.prepare(image, mask))
                .collect()
        };
        let batch = self.batch_size();
        let mut rest = items;
        let mut next = (!rest.is_empty()).then(|| prepare_chunk(&rest[..batch.min(rest.len())]));
        while !rest.is_empty() {
            let len = batch.min(rest.len());
            let (chunk, later) = std::mem::take(&mut rest).split_at_mut(len);
            let prepared = next.take().expect("prepared one chunk ahead")?;
            let following = &later[..batch.min(later.len())];
            let (ran, ahead) = rayon::join(
                || self.infer(&prepared.iter().collect::<Vec<_>>()),
                || (!following.is_empty()).then(|| prepare_chunk(following)),
            );
            next = ahead;
            let recs = ran?;
            chunk
                .par_iter_mut()
                .zip(prepared.par_iter().zip(recs.par_iter()))
                .try_for_each(|((image, mask), (p, rec))| self.finish_in_place(image, mask, p, rec))?;
            rest = later;
        }
        Ok(())
    }

    /// One bare pass of the network: `image` is `[n,3,S,S]`, `mask` `[n,1,S,S]`; returns
    /// (`reconstruction`, `inpainted`), each `[n,3,S,S]`. A model with a fixed batch is fed in
    /// chunks of that size, the last one padded.
    pub fn run_tensors(&self, image: &[f32], mask: &[f32], n: usize) -> Result<(Vec<f32>, Vec<f32>), RuntimeError> {
        let s = self.info.image_size as usize;
        let (image_len, mask_len) = (3 * s * s, s * s);
        if image.len() != n * image_len || mask.len() != n * mask_len {
            return Err(RuntimeError::Inference(format!(
                "run_tensors: {} image / {} mask values for a batch of {n} at {s}x{s} (expected {} / {})",
                image.len(),
                mask.len(),
                n * image_len,
                n * mask_len
            )));
        }
        let (mut rec, mut inp) = (Vec::with_capacity(n * image_len), Vec::with_capacity(n * image_len));
        // A model with a dynamic batch takes the whole tensor in one run.
        let chunk = self.info.fixed_batch.unwrap_or(n.max(1));
        self.run_batches(Inputs::Tensors { image, mask, n }, chunk, true, &mut |_, r, i| {
            rec.extend_from_slice(r);
            inp.extend_from_slice(i.expect("inpainted was fetched"));
        })?;
        Ok((rec, inp))
    }

    /// The one batching path: runs `inputs` in groups of `chunk` (a fixed-batch model's last group
    /// padded with empty images) and hands `consume` each item's position in `inputs`, its
    /// `reconstruction` and, when `inpainted` is asked for, its `inpainted` output, as slices of
    /// ONNX Runtime's own buffers. Inputs that are already one contiguous batch of the right size
    /// (a single prepared item, or a chunk of a caller's tensor) are fed as they are; anything else
    /// is gathered into the reused scratch buffers.
    fn run_batches(
        &self,
        inputs: Inputs<'_>,
        chunk: usize,
        inpainted: bool,
        consume: &mut ItemSink<'_>,
    ) -> Result<(), RuntimeError> {
        let s = self.info.image_size as usize;
        let (image_len, mask_len) = (3 * s * s, s * s);
        let count = inputs.len();
        for start in (0..count).step_by(chunk.max(1)) {
            let len = chunk.min(count - start);
            let padded = self.info.fixed_batch.unwrap_or(len);
            let mut split = |rec: &[f32], inp: Option<&[f32]>| {
                for k in 0..len {
                    let range = k * image_len..(k + 1) * image_len;
                    consume(start + k, &rec[range.clone()], inp.map(|t| &t[range]));
                }
            };
            if let Some((image, mask)) = inputs
                .contiguous(start, len, image_len, mask_len)
                .filter(|_| padded == len)
            {
                self.run(image, mask, len, inpainted, &mut split)?;
                continue;
            }
            let mut scratch = lock(&self.scratch);
            let Scratch { image, mask } = &mut *scratch;
            image.clear();
            mask.clear();
            for k in start..start + len {
                let (i, m) = inputs.item(k, image_len, mask_len);
                image.extend_from_slice(i);
                mask.extend_from_slice(m);
            }
            // A fixed-batch model gets its last chunk padded with empty images.
            image.resize(padded * image_len, 0.0);
            mask.resize(padded * mask_len, 0.0);
            self.run(image, mask, padded, inpainted, &mut split)?;
        }
        Ok(())
    }

    /// An ONNX Runtime error in a step of a run, naming the model file.
    fn ort_error(&self, what: &str, e: ort::Error) -> RuntimeError {
        RuntimeError::ort(format!("{} ({what})", self.path.display()), e)
    }

    /// Zero-copy views of a batch of `n` images and masks as the model's two inputs.
    fn input_views<'a>(
        &self,
        image: &'a [f32],
        mask: &'a [f32],
        n: usize,
    ) -> Result<(TensorRef<'a, f32>, TensorRef<'a, f32>), RuntimeError> {
        let s = self.info.image_size as usize;
        let image_t =
            TensorRef::from_array_view(([n, 3, s, s], image)).map_err(|e| self.ort_error("image tensor", e))?;
        let mask_t = TensorRef::from_array_view(([n, 1, s, s], mask)).map_err(|e| self.ort_error("mask tensor", e))?;
        Ok((image_t, mask_t))
    }

    /// The one run path: one `session.run` of a batch of exactly `n` (the model's batch, if fixed)
    /// fetching `reconstruction` and, if `inpainted`, `inpainted` too, handed to `consume` as ONNX
    /// Runtime's own buffers (no intermediate copy).
    fn run(
        &self,
        image: &[f32],
        mask: &[f32],
        n: usize,
        inpainted: bool,
        consume: &mut BatchSink<'_>,
    ) -> Result<(), RuntimeError> {
        let s = self.info.image_size as usize;
        let fail = |what: &str, e: ort::Error| self.ort_error(what, e);
        let (image_t, mask_t) = self.input_views(image, mask, n)?;
        let mut ort = lock(&self.session);
        let Ort {
            session,
            reconstruction_only,
            both,
        } = &mut *ort;
        let options = if inpainted { both } else { reconstruction_only };
        let outputs = session
            .run_with_options(ort::inputs![names::IMAGE => image_t, names::MASK => mask_t], options)
            .map_err(|e| fail("run", e))?;
        let extract = |name: &str| -> Result<&[f32], RuntimeError> {
            let value = outputs
                .get(name)
                .ok_or_else(|| RuntimeError::Inference(format!("output `{name}` missing")))?;
            let (shape, data) = value.try_extract_tensor::<f32>().map_err(|e| fail(name, e))?;
            check_output_shape(name, shape, n, s)?;
            Ok(data)
        };
        let rec = extract(names::RECONSTRUCTION)?;
        let inp = if inpainted {
            Some(extract(names::INPAINTED)?)
        } else {
            None
        };
        consume(rec, inp);
        Ok(())
    }
}

/// Receives one item's position in the inputs, its `reconstruction` and, when fetched, its `inpainted`.
type ItemSink<'s> = dyn FnMut(usize, &[f32], Option<&[f32]>) + 's;

/// Receives one run's `reconstruction` batch and, when fetched, its `inpainted` batch.
type BatchSink<'s> = dyn FnMut(&[f32], Option<&[f32]>) + 's;

/// What [`Runtime::run_batches`] runs: a caller's batch tensor or the prepared items with a hole.
enum Inputs<'a> {
    /// `[n,3,S,S]` images and `[n,1,S,S]` masks, back to back.
    Tensors {
        image: &'a [f32],
        mask: &'a [f32],
        n: usize,
    },
    /// `items[todo[k]]` is the `k`-th input.
    Items {
        items: &'a [&'a Prepared],
        todo: &'a [usize],
    },
}

impl<'a> Inputs<'a> {
    fn len(&self) -> usize {
        match self {
            Inputs::Tensors { n, .. } => *n,
            Inputs::Items { todo, .. } => todo.len(),
        }
    }

    /// Input `k`'s image and mask.
    fn item(&self, k: usize, image_len: usize, mask_len: usize) -> (&'a [f32], &'a [f32]) {
        match self {
            Inputs::Tensors { image, mask, .. } => (
                &image[k * image_len..(k + 1) * image_len],
                &mask[k * mask_len..(k + 1) * mask_len],
            ),
            Inputs::Items { items, todo } => {
                let p = items[todo[k]];
                (&p.image, &p.mask)
            }
        }
    }

    /// Inputs `start..start+len` as one batch without copying, where they already are one.
    fn contiguous(
        &self,
        start: usize,
        len: usize,
        image_len: usize,
        mask_len: usize,
    ) -> Option<(&'a [f32], &'a [f32])> {
        match self {
            Inputs::Tensors { image, mask, .. } => Some((
                &image[start * image_len..(start + len) * image_len],
                &mask[start * mask_len..(start + len) * mask_len],
            )),
            Inputs::Items { .. } if len == 1 => Some(self.item(start, image_len, mask_len)),
            Inputs::Items { .. } => None,
        }
    }
}

/// The session and what is only used under its lock (ONNX Runtime's `Run` is not thread-safe, and
/// `RunOptions` is not `Sync`).
/// Lock a mutex of this runtime. A panic in another thread while it held the lock leaves nothing half
/// written that the next call depends on (the session is stateless between runs, the scratch buffers are
/// cleared before use), so a poisoned lock is simply taken over.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

struct Ort {
    session: Session,
    /// Fetches only `reconstruction` (all [`Runtime::infer`] needs), so ONNX Runtime neither hands
    /// back nor, where it can prune them, computes the compositing nodes.
    reconstruction_only: RunOptions<HasSelectedOutputs>,
    /// Fetches `reconstruction` and `inpainted` ([`Runtime::run_tensors`]).
    both: RunOptions<HasSelectedOutputs>,
}

/// Batch input buffers kept between [`Runtime::infer`] calls.
#[derive(Default)]
struct Scratch {
    image: Vec<f32>,
    mask: Vec<f32>,
}

/// An output must be `[n,3,S,S]`; anything else would be split into the wrong images.
fn check_output_shape(name: &str, shape: &ort::value::Shape, n: usize, s: usize) -> Result<(), RuntimeError> {
    let want = [n as i64, 3, s as i64, s as i64];
    if shape.iter().as_slice() != want {
        return Err(RuntimeError::Inference(format!(
            "output `{name}` has shape {shape:?}, expected {want:?}"
        )));
    }
    Ok(())
}

/// The bytes of a model file, refusing sizes no ONNX file can have before reading them.
fn read_model_bytes(path: &Path) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| format!("cannot open it: {e}"))?;
    let len = file.metadata().map_err(|e| format!("cannot stat it: {e}"))?.len();
    if len > crate::model::MAX_FILE_BYTES {
        return Err(format!("it is {len} bytes, more than the 2 GiB an ONNX file can hold"));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    // `take`: the file may grow while it is read; never read past the limit either way.
    file.take(crate::model::MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read it: {e}"))?;
    if bytes.len() as u64 > crate::model::MAX_FILE_BYTES {
        return Err("it grew past 2 GiB while being read".into());
    }
    Ok(bytes)
}

/// Check the session's inputs and outputs against the contract and read its metadata.
fn validate(session: &Session) -> Result<ModelInfo, String> {
    let shape_of = |outlets: &[ort::value::Outlet], name: &str, kind: &str| -> Result<Vec<i64>, String> {
        let outlet = outlets.iter().find(|o| o.name() == name).ok_or_else(|| {
            let have: Vec<&str> = outlets.iter().map(|o| o.name()).collect();
            format!("no {kind} named `{name}` (the model has {have:?}); expected inputs image, mask and outputs reconstruction, inpainted")
        })?;
        match outlet.dtype() {
            ValueType::Tensor {
                ty: TensorElementType::Float32,
                shape,
                ..
            } => Ok(shape.iter().copied().collect()),
            other => Err(format!("{kind} `{name}` is {other}, expected a float32 tensor")),
        }
    };
    let image = shape_of(session.inputs(), names::IMAGE, "input")?;
    let mask = shape_of(session.inputs(), names::MASK, "input")?;
    shape_of(session.outputs(), names::RECONSTRUCTION, "output")?;
    shape_of(session.outputs(), names::INPAINTED, "output")?;
    if session.inputs().len() != 2 {
        return Err(format!(
            "the model has {} inputs; expected exactly image and mask",
            session.inputs().len()
        ));
    }
    let meta = session.metadata().map_err(|e| format!("reading metadata: {e}"))?;
    let mut props = BTreeMap::new();
    for key in meta.custom_keys().map_err(|e| format!("reading metadata keys: {e}"))? {
        if let Some(value) = meta.custom(&key) {
            props.insert(key, value);
        }
    }
    ModelInfo::from_parts(props, &image, &mask)
}
