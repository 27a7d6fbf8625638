/*
 * facerecon.h - C interface of facerecon-runtime: reconstruct the holes of RGB frames with an exported
 * facerecon model (ONNX), through ONNX Runtime.
 *
 * Library: libfacerecon.so (or libfacerecon.a, then also link -lpthread -ldl -lm), built by
 * `cargo build --release -p facerecon-capi` into target/release/. This header is kept by hand: it must
 * match crates/facerecon-capi/src/ (tests/c_example.rs compiles examples/c/camera.c against it).
 *
 * ONNX Runtime itself is loaded at run time, once per process, from facerecon_options.ort_library or
 * else the environment variable ORT_DYLIB_PATH (`make setup` fetches it and prints its path).
 *
 * Ownership
 *   - facerecon_open returns a model handle the caller owns; release it with facerecon_close. A handle
 *     is an opaque value checked against the library's table of open models on every call: using it
 *     after facerecon_close, or closing it twice, returns FACERECON_INVALID_HANDLE (never a crash).
 *     Handles are never reused, so a stale one cannot reach a model opened later.
 *   - Every pixel buffer stays the caller's: the library reads inputs and writes outputs during the
 *     call only and keeps no pointer afterwards.
 *   - Strings returned by the library (facerecon_last_error, facerecon_version) belong to the library;
 *     never free them.
 *
 * Thread safety
 *   - A facerecon_model may be used from several threads at once: calls are safe, and the network
 *     runs one call at a time per model (pre/post-processing of different calls overlaps). For
 *     parallel inference open one model per thread: calls on different models never wait for each
 *     other.
 *   - facerecon_close may race with other calls on the same model: calls already running finish
 *     normally (the model is freed when the last one returns); calls that start after it get
 *     FACERECON_INVALID_HANDLE.
 *   - facerecon_last_error / facerecon_last_error_code are per thread: they describe the calling
 *     thread's last fallible call.
 *
 * Versions
 *   FACERECON_ABI_VERSION (below) is raised on every incompatible change of this interface (a field
 *   moved or retyped, a function's signature or a status value changed); compatible additions (new
 *   functions, new status codes, new fields at the end of facerecon_options) keep it. Check at start-up
 *   that facerecon_abi_version() == FACERECON_ABI_VERSION. facerecon_options can grow: callers set
 *   struct_size = sizeof(facerecon_options) (facerecon_options_default does), and the library reads
 *   only what the caller's size covers, giving fields the caller does not know their defaults.
 *   crates/facerecon-capi/tests/header.rs checks every struct layout, enum value and this version
 *   against the Rust definitions.
 *
 * Errors
 *   Functions return a facerecon_status (0 = FACERECON_OK) or, for facerecon_open, NULL; then
 *   facerecon_last_error() says what went wrong, naming the file where there is one. No function
 *   aborts or unwinds into C: an internal error is reported as FACERECON_INTERNAL.
 */
#ifndef FACERECON_H
#define FACERECON_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The ABI this header describes; compare with facerecon_abi_version(). Version 1 added struct_size. */
#define FACERECON_ABI_VERSION 1

/* Return codes. Values are stable; new codes may be added at the end. */
typedef enum facerecon_status {
    FACERECON_OK = 0,
    /* A NULL pointer, a zero size, a stride shorter than a row, a frame too large... */
    FACERECON_INVALID_ARGUMENT = 1,
    /* The model file is missing, is not ONNX, or breaks the facerecon model contract. */
    FACERECON_MODEL = 2,
    /* ONNX Runtime failed while running the model. */
    FACERECON_INFERENCE = 3,
    /* The ONNX Runtime shared library could not be found or loaded (see ORT_DYLIB_PATH). */
    FACERECON_ORT_LIBRARY = 4,
    /* The requested execution provider (CUDA) is unavailable; never silently replaced by the CPU. */
    FACERECON_PROVIDER = 5,
    /* Reserved (pixel operations in 0.1.0); not returned by this version, never reused. */
    FACERECON_IMAGE = 6,
    /* A bug in the library (a caught Rust panic, or a runtime error kind this library does not map
     * yet); the message says what happened. */
    FACERECON_INTERNAL = 7,
    /* The model handle is not open: used after facerecon_close, closed twice, or never returned by
     * facerecon_open. */
    FACERECON_INVALID_HANDLE = 8
} facerecon_status;

/* How a frame is fitted to the model's square input (see facerecon_runtime::FitMode). */
typedef enum facerecon_fit {
    /* A square crop around the hole (50% margin) when the hole is small in a large frame, or when the
     * frame's shorter side is at least 4x the model size (a camera frame) and the hole fits in a square;
     * else the whole frame. */
    FACERECON_FIT_AUTO = 0,
    /* The whole frame, resized to the model size. */
    FACERECON_FIT_WHOLE = 1,
    /* Always a square around the hole (50% margin). */
    FACERECON_FIT_CROP = 2
} facerecon_fit;

/* Options for facerecon_open. Initialise with facerecon_options_default, then change fields
 * (a zeroed struct is refused: its struct_size is 0). */
typedef struct facerecon_options {
    /* sizeof(facerecon_options) as the caller was compiled with; facerecon_options_default sets it.
     * The library reads only these bytes; fields beyond them (added by a later version) get their
     * defaults. Smaller than this version-1 struct: FACERECON_INVALID_ARGUMENT. */
    size_t struct_size;
    /* ONNX Runtime intra-op threads; 0 = one per core. */
    int32_t threads;
    /* -1 = CPU; N >= 0 = CUDA device N (needs a GPU build of ONNX Runtime, else facerecon_open fails
     * with FACERECON_PROVIDER). */
    int32_t device_id;
    /* Frames per network run in facerecon_reconstruct_batch; 0 = the default (16). A model with a
     * fixed batch dimension overrides it. */
    uint32_t batch_size;
    /* A facerecon_fit value. */
    int32_t fit;
    /* Path of libonnxruntime; NULL = $ORT_DYLIB_PATH. Only the first model opened in a process loads
     * the library; later values are ignored. Copied during facerecon_open. */
    const char *ort_library;
    /* Width in frame pixels of a colour-matched seam blended inside the hole: the network's colour
     * error on the known pixels around the hole is added back near the hole's outline, fading out
     * over this many pixels. 0 = plain replacement. Known pixels are bit-identical either way. */
    uint32_t feather;
} facerecon_options;

/* One frame of facerecon_reconstruct_batch; the fields mean what facerecon_reconstruct's arguments do. */
typedef struct facerecon_frame {
    const uint8_t *rgb;
    uint32_t width;
    uint32_t height;
    uint32_t stride_bytes;
    const uint8_t *mask;
    uint32_t mask_stride;
    uint8_t *out_rgb;
    uint32_t out_stride;
} facerecon_frame;

/* A rectangle of a frame, in pixels: facerecon_reconstruct_in_box's hole box. */
typedef struct facerecon_box {
    uint32_t x;
    uint32_t y;
    uint32_t width;
    uint32_t height;
} facerecon_box;

/* An opened, validated model. Opaque. */
typedef struct facerecon_model facerecon_model;

/* The library's version, e.g. "0.1.0". Static; never NULL. */
const char *facerecon_version(void);

/* The ABI version of the library (FACERECON_ABI_VERSION of the header it was built with). */
uint32_t facerecon_abi_version(void);

/* Fill *opts with the defaults: struct_size sizeof(facerecon_options), threads 0 (one per core), device_id -1 (CPU), batch_size 16,
 * fit FACERECON_FIT_AUTO, ort_library NULL, feather 0. Does nothing when opts is NULL. */
void facerecon_options_default(facerecon_options *opts);

/* Load ONNX Runtime (first call only), open the model file and validate it. opts may be NULL (the
 * defaults). Returns NULL on failure: see facerecon_last_error / facerecon_last_error_code. */
facerecon_model *facerecon_open(const char *model_path, const facerecon_options *opts);

/* Release a model. Returns FACERECON_OK (also for NULL, which is ignored), or
 * FACERECON_INVALID_HANDLE when the handle is not open (a second close). The handle is invalid
 * afterwards: every call with it returns FACERECON_INVALID_HANDLE (facerecon_model_size and
 * facerecon_batch_size return 0). */
int facerecon_close(facerecon_model *model);

/* Side of the model's square input in pixels (e.g. 128), or 0 when model is NULL or not open. */
uint32_t facerecon_model_size(const facerecon_model *model);

/* Frames per network run in facerecon_reconstruct_batch, or 0 when model is NULL or not open. */
uint32_t facerecon_batch_size(const facerecon_model *model);

/* Reconstruct the holes of one frame.
 *   rgb       width x height RGB pixels, 3 bytes each (R, G, B), rows stride_bytes apart
 *             (stride_bytes >= 3 * width).
 *   mask      width x height bytes, rows mask_stride apart (>= width); a value >= 128 marks a hole
 *             pixel, anything below a known one.
 *   out_rgb   receives the result, same layout, rows out_stride apart (>= 3 * width). It may be rgb
 *             itself (in-place, then use out_stride == stride_bytes); otherwise it must not overlap
 *             rgb or mask. Only the first 3 * width bytes of each row are written.
 * Known pixels come out bit-identical; hole pixels get the model's reconstruction, fitted back at the
 * frame's own resolution. A frame without holes is copied. On failure out_rgb is left untouched.
 * Returns FACERECON_OK or an error code. */
int facerecon_reconstruct(facerecon_model *model, const uint8_t *rgb, uint32_t width,
                          uint32_t height, uint32_t stride_bytes, const uint8_t *mask,
                          uint32_t mask_stride, uint8_t *out_rgb, uint32_t out_stride);

/* facerecon_reconstruct when the caller knows where the hole is (a face detector's box, the area it
 * blanked itself): *hole_box is a rectangle of the frame that holds every hole pixel of mask, tight
 * or with a margin. The mask is then read only inside the box, on the one-pixel ring around it and
 * where the network's view of the frame is pooled next to the hole; only that view of rgb is read,
 * and, in place (out_rgb == rgb, out_stride == stride_bytes), only the holes' bounding box of
 * out_rgb is written: on a 1920x1080 frame with a face-sized hole a fraction of what
 * facerecon_reconstruct copies. The result is facerecon_reconstruct's. Hole pixels elsewhere, not
 * touching the box, are not searched for (they may stay as they are).
 * FACERECON_INVALID_ARGUMENT (out_rgb untouched) when hole_box is NULL, empty or not inside the
 * frame, or when a hole pixel lies on the ring just outside it (the box cuts the hole). The model
 * keeps frame-sized buffers between calls (freed by facerecon_close). */
int facerecon_reconstruct_in_box(facerecon_model *model, const uint8_t *rgb, uint32_t width,
                                 uint32_t height, uint32_t stride_bytes, const uint8_t *mask,
                                 uint32_t mask_stride, uint8_t *out_rgb, uint32_t out_stride,
                                 const facerecon_box *hole_box);

/* facerecon_reconstruct for `count` frames (sizes may differ), grouped into network runs of
 * facerecon_batch_size frames: faster than one call per frame on a GPU. Each out_rgb may be its own
 * frame's rgb; output buffers must not overlap each other or another frame's input. Every frame is
 * checked before any work is done; on failure no output is written. count 0 is a no-op (frames may
 * then be NULL). */
int facerecon_reconstruct_batch(facerecon_model *model, const facerecon_frame *frames, size_t count);

/* The message of the last facerecon_open / facerecon_close / facerecon_reconstruct /
 * facerecon_reconstruct_in_box / facerecon_reconstruct_batch call on this thread ("" when it
 * succeeded). Owned by the library; valid until this thread's next call to one of those five.
 * Never NULL. */
const char *facerecon_last_error(void);

/* The facerecon_status of that same call (FACERECON_OK when it succeeded). */
int facerecon_last_error_code(void);

#ifdef __cplusplus
}
#endif

#endif /* FACERECON_H */
