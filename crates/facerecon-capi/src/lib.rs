//! The C ABI of facerecon-runtime, for camera software: `libfacerecon.so` / `libfacerecon.a` with the
//! hand-kept header `include/facerecon.h` (the two must agree; `tests/c_example.rs` compiles
//! `examples/c/camera.c` against both).
//!
//! Every entry point checks its pointers, catches panics ([`status::guard`]) and reports failures
//! through a return code plus a per-thread message (`facerecon_last_error`). Pixel buffers are copied
//! in before anything is written out ([`frame`]), so in-place calls (`out_rgb == rgb`) are sound.
//! The functions are also callable from Rust (this crate is an rlib too), which the tests use.

use std::{
    ffi::{c_char, c_int, CStr},
    path::PathBuf,
    ptr,
};

use facerecon_runtime::{pipeline, Device, FitMode, GrayImage, Region, RgbImage, Runtime, RuntimeOptions};

pub mod frame;
pub mod status;

pub use frame::{Frame, HoleBox};
pub use status::Status;
use status::{guard, guard_status, Failure};

/// `FACERECON_ABI_VERSION` of include/facerecon.h, returned by [`facerecon_abi_version`]. Raised on
/// every incompatible change of the C ABI (a field moved or retyped, a function's signature or a
/// status value changed); compatible additions (new functions, new status codes, new fields at the end
/// of `facerecon_options`) keep it. Version 1 is the first versioned ABI: it added `struct_size`.
pub const ABI_VERSION: u32 = 1;

/// `facerecon_fit` of include/facerecon.h: the values of [`Options::fit`].
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fit {
    /// `FACERECON_FIT_AUTO`: [`FitMode::Auto`].
    Auto = 0,
    /// `FACERECON_FIT_WHOLE`: [`FitMode::Whole`].
    Whole = 1,
    /// `FACERECON_FIT_CROP`: [`FitMode::Crop`].
    Crop = 2,
}

impl Fit {
    /// The fit of a C `int32_t`, if it is one.
    pub fn from_raw(value: i32) -> Option<Fit> {
        [Fit::Auto, Fit::Whole, Fit::Crop]
            .into_iter()
            .find(|f| *f as i32 == value)
    }
}

/// `facerecon_options` of include/facerecon.h. Initialise with [`facerecon_options_default`].
///
/// It can grow: a caller sets `struct_size` to the `sizeof` it was compiled with, and the library
/// reads only what that covers, giving later fields their defaults (see [`facerecon_open`]).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// `sizeof(facerecon_options)` as the caller knows it; [`facerecon_options_default`] sets it.
    pub struct_size: usize,
    /// Intra-op threads; 0 = ONNX Runtime decides.
    pub threads: i32,
    /// -1 = CPU, N >= 0 = CUDA device N.
    pub device_id: i32,
    /// Frames per network run; 0 = the runtime's default.
    pub batch_size: u32,
    /// `facerecon_fit`: 0 auto, 1 whole, 2 crop.
    pub fit: i32,
    /// Path of libonnxruntime, or NULL for `ORT_DYLIB_PATH`.
    pub ort_library: *const c_char,
    /// Seam width inside the hole ([`RuntimeOptions::feather`]); 0 = plain replacement.
    pub feather: u32,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            struct_size: OPTIONS_SIZE,
            threads: 0,
            device_id: -1,
            batch_size: RuntimeOptions::default().batch_size as u32,
            fit: 0,
            ort_library: ptr::null(),
            feather: RuntimeOptions::default().feather,
        }
    }
}

/// `sizeof(facerecon_options)` of this version.
const OPTIONS_SIZE: usize = std::mem::size_of::<Options>();

/// The smallest `struct_size` accepted: the first versioned `facerecon_options` (ABI version 1), which
/// ends with `feather`. Fields added later lie beyond it and take their defaults for older callers.
const OPTIONS_MIN_SIZE: usize = std::mem::offset_of!(Options, feather) + std::mem::size_of::<u32>();

/// The caller's options: the first `struct_size` bytes of `*opts` (at most this version's size) over
/// the defaults.
///
/// # Safety
/// `opts` points to a readable `facerecon_options` of at least `struct_size` bytes (or of this
/// version's size, whichever is smaller).
unsafe fn read_options(opts: *const Options) -> Result<Options, Failure> {
    // SAFETY: every version of the struct starts with `struct_size` (the caller's pointer is valid).
    let size = unsafe { ptr::addr_of!((*opts).struct_size).read_unaligned() };
    if size < OPTIONS_MIN_SIZE {
        return Err(Failure::invalid(format!(
            "options.struct_size = {size}; set it to sizeof(facerecon_options) (at least {OPTIONS_MIN_SIZE}), e.g. with facerecon_options_default"
        )));
    }
    let mut options = Options::default();
    // SAFETY: the caller's struct has at least `size` readable bytes; `options` has OPTIONS_SIZE;
    // both prefixes end on a field boundary of the same layout (OPTIONS_MIN_SIZE or more, versions only
    // append fields), so every copied field is whole.
    unsafe {
        ptr::copy_nonoverlapping(
            opts.cast::<u8>(),
            ptr::addr_of_mut!(options).cast::<u8>(),
            size.min(OPTIONS_SIZE),
        )
    };
    Ok(options)
}

/// `facerecon_model`: what C holds is an opaque handle, never a pointer to this type. A handle is
/// a number from [`registry`] disguised as a pointer; every call looks it up, so a closed, doubly
/// closed or made-up handle is an error code instead of a use-after-free.
#[repr(C)]
pub struct Model {
    _opaque: [u8; 0],
}

/// An open model: the runtime behind a handle.
#[derive(Debug)]
pub struct OpenModel {
    runtime: Runtime,
    /// A frame and a mask of the last size seen, reused by [`facerecon_reconstruct_in_box`]: only
    /// the part the network sees is copied in per call (not a fresh 8 MB per 1920x1080 frame).
    scratch: std::sync::Mutex<Option<(RgbImage, GrayImage)>>,
}

impl OpenModel {
    /// The runtime behind the handle.
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// [`facerecon_reconstruct_in_box`] on a checked frame.
    ///
    /// # Safety
    /// [`Frame::check`] passed and the frame's buffers are as the header describes.
    unsafe fn reconstruct_in_box(&self, frame: &Frame, hole_box: Region) -> Result<(), Failure> {
        let (w, h) = (frame.width, frame.height);
        // One call at a time uses the kept buffers; a concurrent call on the same model gets its own.
        let mut kept = self.scratch.try_lock().ok();
        let mut own = None;
        let slot = match kept.as_deref_mut() {
            Some(slot) => slot,
            None => &mut own,
        };
        if slot.as_ref().map(|(image, _)| image.dimensions()) != Some((w, h)) {
            *slot = Some((RgbImage::new(w, h), GrayImage::new(w, h)));
        }
        let (image, mask) = slot.as_mut().expect("just filled");
        // What the runtime reads of the mask: the box and its ring (for `check_hole_box`), then
        // the region the network sees (where the mask is pooled and pasted), and of the pixels,
        // that region; everything else in the buffers is stale and never read.
        let b = hole_box;
        let inside = b.width > 0
            && b.height > 0
            && b.x as u64 + b.width as u64 <= w as u64
            && b.y as u64 + b.height as u64 <= h as u64;
        if inside {
            let (x0, y0) = (b.x.saturating_sub(1), b.y.saturating_sub(1));
            let ring = Region {
                x: x0,
                y: y0,
                width: (b.x + b.width + 1).min(w) - x0,
                height: (b.y + b.height + 1).min(h) - y0,
            };
            // SAFETY: the caller's contract; `ring` lies inside the frame.
            unsafe { frame.read_rect(image, mask, ring, false) };
        }
        // A box that is empty, outside the frame or cuts the hole fails here, before any output.
        let Some(hole) = pipeline::check_hole_box(mask, b)? else {
            // No hole: the output is the input.
            // SAFETY: the caller's contract; an empty rectangle writes nothing of ours.
            unsafe { frame.write_rect(image, Region { width: 0, ..b }) };
            return Ok(());
        };
        let rt = &self.runtime;
        let region = pipeline::choose_region(w, h, hole, rt.info().image_size, rt.options().fit);
        // SAFETY: the caller's contract; `region` lies inside the frame.
        unsafe { frame.read_rect(image, mask, region, true) };
        rt.reconstruct_in_place_in_box(image, mask, b)?;
        // Only hole pixels changed, and they all lie in the holes' bounding box.
        // SAFETY: the caller's contract; `hole` lies inside the frame.
        unsafe { frame.write_rect(image, hole) };
        Ok(())
    }
}

/// The table of open handles.
///
/// Handles are ids from a counter that never repeats (a reused id would let a stale handle reach
/// someone else's model), scaled so that they are aligned like pointers and never NULL. The table's
/// lock is held only to look an id up and clone its `Arc`: calls on different handles (and on the
/// same handle) run concurrently, and a `facerecon_close` during a running call only drops the
/// table's reference — the model is freed when that call finishes.
pub mod registry {
    use std::{
        collections::HashMap,
        sync::{Arc, Mutex, MutexGuard, OnceLock},
    };

    use super::{Model, OpenModel};
    use crate::status::{Failure, Status};

    /// Spacing of handle values (keeps them 16-byte aligned, like a real allocation).
    const STEP: usize = 16;

    struct Table {
        next: usize,
        open: HashMap<usize, Arc<OpenModel>>,
    }

    fn table() -> MutexGuard<'static, Table> {
        static TABLE: OnceLock<Mutex<Table>> = OnceLock::new();
        TABLE
            .get_or_init(|| {
                Mutex::new(Table {
                    // Far from 0 and from small integers a C caller might pass by mistake.
                    next: 0x1000,
                    open: HashMap::new(),
                })
            })
            .lock()
            // Nothing is left half-updated by a panic under this lock (insert/remove/clone only).
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Register a model; its handle.
    pub fn insert(model: OpenModel) -> *mut Model {
        let mut t = table();
        let mut id = t.next;
        // usize wraps only after 2^60 opens on 64-bit (2^28 on 32-bit); if it ever does, skip the
        // low values and any id still open.
        while id < 0x1000 || t.open.contains_key(&id) {
            id = id.wrapping_add(STEP);
        }
        t.next = id.wrapping_add(STEP);
        t.open.insert(id, Arc::new(model));
        id as *mut Model
    }

    fn unknown(handle: *const Model) -> Failure {
        Failure {
            status: Status::InvalidHandle,
            message: format!(
                "model handle {handle:p} is not open: it was closed already, or never returned by facerecon_open"
            ),
        }
    }

    /// The model behind an open handle (a new reference: it stays alive while the caller uses it).
    pub fn get(handle: *const Model) -> Result<Arc<OpenModel>, Failure> {
        if handle.is_null() {
            return Err(Failure::invalid("model is NULL"));
        }
        table()
            .open
            .get(&(handle as usize))
            .cloned()
            .ok_or_else(|| unknown(handle))
    }

    /// Remove a handle; the model is dropped once no call is using it.
    pub fn remove(handle: *const Model) -> Result<Arc<OpenModel>, Failure> {
        table().open.remove(&(handle as usize)).ok_or_else(|| unknown(handle))
    }
}

/// Translate the C options, checking every field.
///
/// # Safety
/// `ort_library` is NULL or a NUL-terminated string.
unsafe fn runtime_options(opts: &Options) -> Result<RuntimeOptions, Failure> {
    let defaults = RuntimeOptions::default();
    let threads = match opts.threads {
        0 => None,
        n if n > 0 => Some(n as usize),
        n => {
            return Err(Failure::invalid(format!(
                "options.threads = {n}; expected 0 (automatic) or a positive count"
            )))
        }
    };
    let device = match opts.device_id {
        -1 => Device::Cpu,
        id if id >= 0 => Device::Cuda(id),
        id => {
            return Err(Failure::invalid(format!(
                "options.device_id = {id}; expected -1 (CPU) or a CUDA device >= 0"
            )))
        }
    };
    let fit = match Fit::from_raw(opts.fit) {
        Some(Fit::Auto) => FitMode::Auto,
        Some(Fit::Whole) => FitMode::Whole,
        Some(Fit::Crop) => FitMode::Crop,
        None => {
            return Err(Failure::invalid(format!(
                "options.fit = {}; expected 0 (auto), 1 (whole) or 2 (crop)",
                opts.fit
            )))
        }
    };
    let batch_size = match opts.batch_size {
        0 => defaults.batch_size,
        n => n as usize,
    };
    let ort_library = if opts.ort_library.is_null() {
        None
    } else {
        // SAFETY: non-null, and this function's contract makes it a NUL-terminated string.
        Some(c_path(
            unsafe { CStr::from_ptr(opts.ort_library) },
            "options.ort_library",
        )?)
    };
    Ok(RuntimeOptions {
        threads,
        device,
        batch_size,
        fit,
        ort_library,
        feather: opts.feather,
        ..defaults
    })
}

/// A path from C bytes: any bytes on Unix, UTF-8 elsewhere.
fn c_path(text: &CStr, what: &str) -> Result<PathBuf, Failure> {
    if text.to_bytes().is_empty() {
        return Err(Failure::invalid(format!("{what} is empty")));
    }
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        Ok(PathBuf::from(std::ffi::OsStr::from_bytes(text.to_bytes())))
    }
    #[cfg(not(unix))]
    {
        text.to_str()
            .map(PathBuf::from)
            .map_err(|_| Failure::invalid(format!("{what} is not UTF-8")))
    }
}

fn model_ref(model: *const Model) -> Result<std::sync::Arc<OpenModel>, Failure> {
    registry::get(model)
}

/// `const char* facerecon_version(void)`: the crate version, static.
#[no_mangle]
pub extern "C" fn facerecon_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// `uint32_t facerecon_abi_version(void)`: [`ABI_VERSION`]. A caller compares it with the
/// `FACERECON_ABI_VERSION` of the header it was compiled with.
#[no_mangle]
pub extern "C" fn facerecon_abi_version() -> u32 {
    ABI_VERSION
}

/// `void facerecon_options_default(facerecon_options*)`: the defaults, `struct_size` included.
///
/// # Safety
/// `opts` is NULL or points to a writable `facerecon_options`.
#[no_mangle]
pub unsafe extern "C" fn facerecon_options_default(opts: *mut Options) {
    if !opts.is_null() {
        // SAFETY: non-null, and the caller guarantees it points to a writable `facerecon_options`.
        unsafe { opts.write(Options::default()) };
    }
}

/// `facerecon_model* facerecon_open(const char* model_path, const facerecon_options* opts)`;
/// NULL on failure (see `facerecon_last_error`). `opts->struct_size` below the first versioned size
/// is `FACERECON_INVALID_ARGUMENT`; fields beyond it take their defaults.
///
/// # Safety
/// `model_path` is NULL or a NUL-terminated string; `opts` is NULL or points to a valid
/// `facerecon_options` of at least `opts->struct_size` bytes.
#[no_mangle]
pub unsafe extern "C" fn facerecon_open(model_path: *const c_char, opts: *const Options) -> *mut Model {
    guard(|| {
        if model_path.is_null() {
            return Err(Failure::invalid("model_path is NULL"));
        }
        // SAFETY: non-null, and the caller guarantees a NUL-terminated string.
        let path = c_path(unsafe { CStr::from_ptr(model_path) }, "model_path")?;
        let opts = if opts.is_null() {
            Options::default()
        } else {
            // SAFETY: the caller passes a readable facerecon_options of at least its struct_size bytes.
            unsafe { read_options(opts)? }
        };
        // SAFETY: `opts.ort_library` is NULL or the caller's NUL-terminated string, as `runtime_options` requires.
        let options = unsafe { runtime_options(&opts) }?;
        let runtime = Runtime::load(&path, &options)?;
        Ok(registry::insert(OpenModel {
            runtime,
            scratch: Default::default(),
        }))
    })
    .unwrap_or(ptr::null_mut())
}

/// `int facerecon_close(facerecon_model*)`: `FACERECON_OK`, also for NULL (ignored);
/// `FACERECON_INVALID_HANDLE` for a handle that is not open (closed twice, or made up).
///
/// Declared `void` before 0.1 had a registry; a caller compiled against that ignores the result,
/// which the C calling conventions allow.
///
/// # Safety
/// None needed: the handle is only looked up, never dereferenced.
#[no_mangle]
pub unsafe extern "C" fn facerecon_close(model: *mut Model) -> c_int {
    guard_status(|| {
        if model.is_null() {
            return Ok(());
        }
        // The session is dropped here (or by the last running call) inside the guard: a panic while
        // dropping cannot unwind into C either.
        drop(registry::remove(model)?);
        Ok(())
    })
}

/// `uint32_t facerecon_model_size(const facerecon_model*)`: the model's input side, 0 for NULL or
/// a handle that is not open.
///
/// # Safety
/// None needed: the handle is only looked up.
#[no_mangle]
pub unsafe extern "C" fn facerecon_model_size(model: *const Model) -> u32 {
    model_ref(model).map_or(0, |m| m.runtime.info().image_size)
}

/// `uint32_t facerecon_batch_size(const facerecon_model*)`: frames per network run, 0 for NULL or
/// a handle that is not open.
///
/// # Safety
/// None needed: the handle is only looked up.
#[no_mangle]
pub unsafe extern "C" fn facerecon_batch_size(model: *const Model) -> u32 {
    model_ref(model).map_or(0, |m| m.runtime.batch_size().min(u32::MAX as usize) as u32)
}

/// `int facerecon_reconstruct(...)`: one frame; see include/facerecon.h for the buffer layout.
///
/// # Safety
/// `model` may be anything (it is looked up, never dereferenced); the buffers are NULL or as described in the header.
#[no_mangle]
#[allow(clippy::too_many_arguments)] // the C signature
pub unsafe extern "C" fn facerecon_reconstruct(
    model: *mut Model,
    rgb: *const u8,
    width: u32,
    height: u32,
    stride_bytes: u32,
    mask: *const u8,
    mask_stride: u32,
    out_rgb: *mut u8,
    out_stride: u32,
) -> c_int {
    guard_status(|| {
        let model = model_ref(model)?;
        let frame = Frame {
            rgb,
            width,
            height,
            stride_bytes,
            mask,
            mask_stride,
            out_rgb,
            out_stride,
        };
        frame.check("frame")?;
        // SAFETY: `check` passed and the caller guarantees the buffers are as the header describes.
        let (mut image, mask) = unsafe { frame.read() };
        // Into our copy of the frame: no second 6 MB image per 1920x1080 call.
        model.runtime.reconstruct_in_place(&mut image, &mask)?;
        // SAFETY: as for `read`; the input was copied first, so `out_rgb == rgb` is fine.
        unsafe { frame.write(&image) };
        Ok(())
    })
}

/// `int facerecon_reconstruct_in_box(...)`: [`facerecon_reconstruct`] when the caller knows where
/// the hole is ([`Runtime::reconstruct_in_place_in_box`]); see include/facerecon.h.
///
/// Only the part of the frame the network sees is copied in (into buffers the model keeps between
/// calls), and only the holes' bounding box written out when `out_rgb` is `rgb` itself.
///
/// # Safety
/// `model` may be anything (it is looked up, never dereferenced); the buffers and `hole_box` are NULL
/// or as described in the header.
#[no_mangle]
#[allow(clippy::too_many_arguments)] // the C signature
pub unsafe extern "C" fn facerecon_reconstruct_in_box(
    model: *mut Model,
    rgb: *const u8,
    width: u32,
    height: u32,
    stride_bytes: u32,
    mask: *const u8,
    mask_stride: u32,
    out_rgb: *mut u8,
    out_stride: u32,
    hole_box: *const HoleBox,
) -> c_int {
    guard_status(|| {
        let model = model_ref(model)?;
        let frame = Frame {
            rgb,
            width,
            height,
            stride_bytes,
            mask,
            mask_stride,
            out_rgb,
            out_stride,
        };
        frame.check("frame")?;
        if hole_box.is_null() {
            return Err(Failure::invalid("hole_box is NULL"));
        }
        // SAFETY: non-null, and the caller guarantees a readable facerecon_box (any alignment).
        let hole_box = unsafe { hole_box.read_unaligned() };
        // SAFETY: `check` passed and the caller guarantees the buffers are as the header describes.
        unsafe { model.reconstruct_in_box(&frame, hole_box.into()) }
    })
}

/// `int facerecon_reconstruct_batch(facerecon_model*, const facerecon_frame*, size_t count)`.
///
/// # Safety
/// `model` may be anything (it is looked up, never dereferenced); `frames` is NULL or points to `count` frames whose buffers are
/// NULL or as described in the header.
#[no_mangle]
pub unsafe extern "C" fn facerecon_reconstruct_batch(model: *mut Model, frames: *const Frame, count: usize) -> c_int {
    guard_status(|| {
        let model = model_ref(model)?;
        if count == 0 {
            return Ok(());
        }
        if frames.is_null() {
            return Err(Failure::invalid(format!("frames is NULL (count {count})")));
        }
        // SAFETY: non-null, and the caller guarantees `count` frames there.
        let frames = unsafe { std::slice::from_raw_parts(frames, count) };
        for (i, f) in frames.iter().enumerate() {
            f.check(&format!("frames[{i}]"))?;
        }
        // Every input is copied before any output is written (outputs may alias their inputs).
        // SAFETY: every frame passed `check`; the caller guarantees its buffers.
        let mut items: Vec<_> = frames.iter().map(|f| unsafe { f.read() }).collect();
        // Into our copies: no second image per frame.
        model.runtime.reconstruct_batch_in_place(&mut items)?;
        for (f, (image, _)) in frames.iter().zip(&items) {
            // SAFETY: as for `read`; all inputs were copied before this first write.
            unsafe { f.write(image) };
        }
        Ok(())
    })
}

/// `const char* facerecon_last_error(void)`: this thread's last message ("" after success).
#[no_mangle]
pub extern "C" fn facerecon_last_error() -> *const c_char {
    status::last_error_ptr()
}

/// `int facerecon_last_error_code(void)`: this thread's last status.
#[no_mangle]
pub extern "C" fn facerecon_last_error_code() -> c_int {
    status::last_status() as c_int
}
