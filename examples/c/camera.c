/*
 * camera.c - how camera software uses libfacerecon: open the model once, then reconstruct frames
 * straight from memory in a loop, timing each one.
 *
 *   cc -std=c11 -O2 -Iinclude examples/c/camera.c -Ltarget/release -lfacerecon \
 *      -Wl,-rpath,$PWD/target/release -o camera
 *   ORT_DYLIB_PATH=$(scripts/setup-ort.sh) ./camera exported/seed.onnx [frames] [width] [height]
 *
 * The frames are synthetic (a colour gradient with a black box that moves from frame to frame, the
 * box being the hole), held in a strided buffer the way a capture API hands them over. For each
 * frame it checks that every known pixel comes back bit-identical and that the hole was filled, and
 * it also exercises in-place reconstruction, the batch call and the error paths. Exit status 0 means
 * every check passed; each check prints a line starting with "check:".
 */
#define _POSIX_C_SOURCE 199309L

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "facerecon.h"

#define BATCH 3

static int failures = 0;

static void check(int ok, const char *what) {
    printf("check: %s: %s\n", what, ok ? "OK" : "FAILED");
    if (!ok) failures++;
}

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

/* A frame in a capture-style buffer: rows padded to `stride` bytes. */
typedef struct {
    uint32_t width, height, stride;
    uint8_t *rgb;  /* height * stride bytes */
    uint8_t *mask; /* width * height bytes, 255 = hole */
    uint32_t hole_x, hole_y, hole_w, hole_h;
} frame;

static int frame_alloc(frame *f, uint32_t width, uint32_t height) {
    f->width = width;
    f->height = height;
    f->stride = 3 * width + 13; /* deliberately not a multiple of 3 or 4 */
    f->rgb = malloc((size_t)f->stride * height);
    f->mask = malloc((size_t)width * height);
    return f->rgb && f->mask;
}

static void frame_free(frame *f) {
    free(f->rgb);
    free(f->mask);
}

/* Frame number `n`: a gradient that drifts with n, and a black box (the hole) that moves with n. */
static void frame_make(frame *f, unsigned n) {
    f->hole_w = f->width / 6 + 4;
    f->hole_h = f->height / 7 + 4;
    f->hole_x = (f->width / 5 + 7 * n) % (f->width - f->hole_w);
    f->hole_y = (f->height / 4 + 5 * n) % (f->height - f->hole_h);
    for (uint32_t y = 0; y < f->height; y++) {
        uint8_t *row = f->rgb + (size_t)y * f->stride;
        for (uint32_t x = 0; x < f->width; x++) {
            int hole = x >= f->hole_x && x < f->hole_x + f->hole_w && y >= f->hole_y &&
                       y < f->hole_y + f->hole_h;
            f->mask[(size_t)y * f->width + x] = hole ? 255 : 0;
            row[3 * x + 0] = hole ? 0 : (uint8_t)(x * 255 / f->width + n);
            row[3 * x + 1] = hole ? 0 : (uint8_t)(y * 255 / f->height);
            row[3 * x + 2] = hole ? 0 : (uint8_t)((x + y + 3 * n) & 0xff);
        }
        memset(row + 3 * f->width, 0xAB, f->stride - 3 * f->width); /* padding must stay */
    }
}

/* Compare `out` (rows `out_stride` apart) with the input frame: known pixels identical, holes changed. */
static void compare(const frame *f, const uint8_t *in, const uint8_t *out, uint32_t out_stride,
                    size_t *known_changed, size_t *holes_changed, size_t *holes) {
    *known_changed = *holes_changed = *holes = 0;
    for (uint32_t y = 0; y < f->height; y++) {
        for (uint32_t x = 0; x < f->width; x++) {
            const uint8_t *a = in + (size_t)y * f->stride + 3 * x;
            const uint8_t *b = out + (size_t)y * out_stride + 3 * x;
            int same = memcmp(a, b, 3) == 0;
            if (f->mask[(size_t)y * f->width + x] >= 128) {
                (*holes)++;
                *holes_changed += !same;
            } else {
                *known_changed += !same;
            }
        }
    }
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL.onnx [frames] [width] [height]\n", argv[0]);
        return 2;
    }
    const char *model_path = argv[1];
    unsigned frames = argc > 2 ? (unsigned)atoi(argv[2]) : 20;
    uint32_t width = argc > 3 ? (uint32_t)atoi(argv[3]) : 640;
    uint32_t height = argc > 4 ? (uint32_t)atoi(argv[4]) : 480;
    if (frames == 0 || width < 32 || height < 32) {
        fprintf(stderr, "frames must be > 0 and the frame at least 32x32\n");
        return 2;
    }
    printf("libfacerecon %s\n", facerecon_version());
    /* A library built for another ABI than this header describes would misread the structs. */
    if (facerecon_abi_version() != FACERECON_ABI_VERSION) {
        fprintf(stderr, "libfacerecon has ABI %u, this program was compiled for %u\n",
                (unsigned)facerecon_abi_version(), (unsigned)FACERECON_ABI_VERSION);
        return 1;
    }

    /* Errors come back as codes plus a message, never as a crash. */
    facerecon_model *none = facerecon_open("/nonexistent/model.onnx", NULL);
    check(none == NULL && facerecon_last_error_code() == FACERECON_MODEL &&
              strstr(facerecon_last_error(), "/nonexistent/model.onnx") != NULL,
          "a missing model file is reported, naming it");
    check(facerecon_reconstruct(NULL, NULL, 0, 0, 0, NULL, 0, NULL, 0) ==
              FACERECON_INVALID_ARGUMENT && strlen(facerecon_last_error()) > 0,
          "NULL arguments are rejected");

    facerecon_options opts;
    facerecon_options_default(&opts);
    opts.threads = 2;
    opts.batch_size = BATCH;
    opts.feather = 4; /* a narrow colour-matched seam instead of a hard edge along the hole */
    double t0 = now_ms();
    facerecon_model *model = facerecon_open(model_path, &opts);
    if (!model) {
        fprintf(stderr, "cannot open %s (status %d): %s\n", model_path, facerecon_last_error_code(),
                facerecon_last_error());
        return 1;
    }
    printf("model %s: %ux%u input, batch %u, opened in %.1f ms\n", model_path,
           facerecon_model_size(model), facerecon_model_size(model), facerecon_batch_size(model),
           now_ms() - t0);
    check(facerecon_batch_size(model) == BATCH, "options reach the runtime");

    frame f;
    uint8_t *out = NULL, *copy = NULL;
    uint32_t out_stride = 3 * width; /* a tightly packed output, unlike the input */
    if (!frame_alloc(&f, width, height) || !(out = malloc((size_t)out_stride * height)) ||
        !(copy = malloc((size_t)f.stride * height))) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }

    /* The camera loop: one frame in, one frame out, nothing touches the disk. */
    double *ms = malloc(frames * sizeof *ms);
    int loop_ok = ms != NULL;
    for (unsigned n = 0; n < frames && loop_ok; n++) {
        frame_make(&f, n);
        double start = now_ms();
        int rc = facerecon_reconstruct(model, f.rgb, f.width, f.height, f.stride, f.mask, f.width,
                                       out, out_stride);
        ms[n] = now_ms() - start;
        if (rc != FACERECON_OK) {
            fprintf(stderr, "frame %u: status %d: %s\n", n, rc, facerecon_last_error());
            loop_ok = 0;
            break;
        }
        size_t known_changed, holes_changed, holes;
        compare(&f, f.rgb, out, out_stride, &known_changed, &holes_changed, &holes);
        printf("frame %u: %.2f ms, hole %ux%u at (%u,%u): %zu/%zu hole pixels filled, %zu known pixels changed\n",
               n, ms[n], f.hole_w, f.hole_h, f.hole_x, f.hole_y, holes_changed, holes, known_changed);
        /* A real network may leave the odd hole pixel black; most must change. */
        if (known_changed != 0 || holes_changed * 10 < holes * 9) loop_ok = 0;
    }
    check(loop_ok, "every frame: known pixels unchanged, hole pixels filled");
    if (ms) {
        qsort(ms, frames, sizeof *ms, cmp_double);
        double sum = 0;
        for (unsigned n = 0; n < frames; n++) sum += ms[n];
        printf("latency over %u frames: mean %.2f ms, p50 %.2f ms, p95 %.2f ms, max %.2f ms\n", frames,
               sum / frames, ms[frames / 2], ms[(frames * 95) / 100 < frames ? (frames * 95) / 100 : frames - 1],
               ms[frames - 1]);
    }

    /* In place: the output overwrites the input buffer and must equal the out-of-place result. */
    frame_make(&f, 1);
    int rc = facerecon_reconstruct(model, f.rgb, f.width, f.height, f.stride, f.mask, f.width, out,
                                   out_stride);
    memcpy(copy, f.rgb, (size_t)f.stride * height);
    rc |= facerecon_reconstruct(model, f.rgb, f.width, f.height, f.stride, f.mask, f.width, f.rgb,
                                f.stride);
    int same = rc == FACERECON_OK;
    for (uint32_t y = 0; y < height && same; y++) {
        same = memcmp(f.rgb + (size_t)y * f.stride, out + (size_t)y * out_stride, 3 * width) == 0 &&
               f.rgb[(size_t)y * f.stride + 3 * width] == 0xAB; /* row padding untouched */
    }
    check(same, "in-place reconstruction equals out-of-place, padding untouched");

    /* The app knows where the hole is (it blanked it, or a face detector found it): passing its box
     * spares the library the search of the whole mask. Same result, in place. */
    frame_make(&f, 1);
    facerecon_box hole_box = {f.hole_x, f.hole_y, f.hole_w, f.hole_h};
    rc = facerecon_reconstruct_in_box(model, f.rgb, f.width, f.height, f.stride, f.mask, f.width,
                                      f.rgb, f.stride, &hole_box);
    same = rc == FACERECON_OK;
    for (uint32_t y = 0; y < height && same; y++) {
        same = memcmp(f.rgb + (size_t)y * f.stride, out + (size_t)y * out_stride, 3 * width) == 0 &&
               f.rgb[(size_t)y * f.stride + 3 * width] == 0xAB;
    }
    hole_box.width -= 1; /* a box that cuts the hole is refused */
    check(same &&
              facerecon_reconstruct_in_box(model, f.rgb, f.width, f.height, f.stride, f.mask,
                                           f.width, f.rgb, f.stride, &hole_box) ==
                  FACERECON_INVALID_ARGUMENT,
          "a known hole box gives the same frame; a box that cuts the hole is refused");

    /* The batch call: BATCH + 1 frames (two network runs), in place, equal to one-by-one results. */
    frame batch[BATCH + 1];
    facerecon_frame desc[BATCH + 1];
    uint8_t *single[BATCH + 1];
    int batch_ok = 1;
    for (int i = 0; i < BATCH + 1; i++) {
        /* Different sizes in one batch are fine. */
        if (!frame_alloc(&batch[i], width / 2 + 16 * (uint32_t)i, height / 2) ||
            !(single[i] = malloc((size_t)batch[i].stride * batch[i].height))) {
            fprintf(stderr, "out of memory\n");
            return 1;
        }
        frame_make(&batch[i], 10 + (unsigned)i);
        batch_ok &= facerecon_reconstruct(model, batch[i].rgb, batch[i].width, batch[i].height,
                                          batch[i].stride, batch[i].mask, batch[i].width, single[i],
                                          batch[i].stride) == FACERECON_OK;
        desc[i] = (facerecon_frame){batch[i].rgb,  batch[i].width, batch[i].height, batch[i].stride,
                                    batch[i].mask, batch[i].width, batch[i].rgb,    batch[i].stride};
    }
    double start = now_ms();
    batch_ok &= facerecon_reconstruct_batch(model, desc, BATCH + 1) == FACERECON_OK;
    printf("batch of %d frames: %.2f ms\n", BATCH + 1, now_ms() - start);
    for (int i = 0; i < BATCH + 1 && batch_ok; i++) {
        for (uint32_t y = 0; y < batch[i].height; y++) {
            size_t at = (size_t)y * batch[i].stride;
            batch_ok &= memcmp(batch[i].rgb + at, single[i] + at, 3 * batch[i].width) == 0;
        }
    }
    check(batch_ok, "batch results equal one-by-one results");
    desc[2].out_stride = 1;
    check(facerecon_reconstruct_batch(model, desc, BATCH + 1) == FACERECON_INVALID_ARGUMENT &&
              strstr(facerecon_last_error(), "frames[2]") != NULL,
          "a bad frame in a batch is named");

    for (int i = 0; i < BATCH + 1; i++) {
        frame_free(&batch[i]);
        free(single[i]);
    }
    frame_free(&f);
    free(out);
    free(copy);
    free(ms);
    check(facerecon_close(model) == FACERECON_OK, "the model closes");
    {
        /* The handle is stale now: every use is an error code, never a crash. */
        uint8_t px[3] = {9, 9, 9};
        const uint8_t hole[1] = {255};
        check(facerecon_reconstruct(model, px, 1, 1, 3, hole, 1, px, 3) == FACERECON_INVALID_HANDLE &&
                  facerecon_last_error_code() == FACERECON_INVALID_HANDLE &&
                  strstr(facerecon_last_error(), "not open") != NULL && px[0] == 9 &&
                  facerecon_model_size(model) == 0 && facerecon_batch_size(model) == 0,
              "a closed model is refused");
        check(facerecon_close(model) == FACERECON_INVALID_HANDLE, "a second close is an error");
    }
    printf("%s\n", failures ? "FAILED" : "all checks passed");
    return failures ? 1 : 0;
}
