# facerecon — train -> export -> infer.   `make demo` runs the whole job; `make test` runs the tests.
# Variables: CONFIG (a configs/*.yaml), DATA (a directory of face images; empty = synthetic faces),
#            NAME (run name, default: the config's file name), EPOCHS, MAX_IMAGES, THREADS, DEVICE,
#            RESUME=1 (continue runs/NAME), INIT=runs/OTHER (fine-tune from another run's weights).
SHELL        := /bin/bash
CONFIG       ?= configs/seed.yaml
NAME         ?= $(basename $(notdir $(CONFIG)))
DATA         ?=
EPOCHS       ?=
MAX_IMAGES   ?=
THREADS      ?=
DEVICE       ?= cpu
INPUT        ?=
OUT          ?= reconstructed/$(NAME)
CARGO        ?= cargo
RELEASE_BIN  := target/release
ORT_VERSION  ?= 1.32.0
export ORT_VERSION

# ONNX Runtime's shared library, fetched once from the official PyPI wheel (or $ORT_DYLIB_PATH if it exists).
ORT_LIB       = $(shell scripts/setup-ort.sh cpu)
ORT_GPU_LIB   = $(shell scripts/setup-ort.sh gpu)

train_args = --config $(CONFIG) --out runs/$(NAME) --device $(DEVICE) \
  $(if $(DATA),--data $(DATA),--synthetic 4000) $(if $(EPOCHS),--epochs $(EPOCHS)) \
  $(if $(MAX_IMAGES),--max-images $(MAX_IMAGES)) $(if $(THREADS),--threads $(THREADS)) $(if $(RESUME),--resume) \
  $(if $(INIT),--init-from $(INIT))

.PHONY: help setup setup-gpu deps build build-cuda train resume unet export infer demo test lint lint-tools fuzz crash-test bench bench-train bench-parity bench-edge check-onnx clean-runs

help:
	@sed -n '1,3p' Makefile; echo; grep -E '^[a-z-]+:.*##' Makefile | sed 's/:.*##/\t/'

deps:                       ## system packages the build needs (protoc for candle-onnx's build script)
	@scripts/install-deps.sh

setup: deps                 ## fetch ONNX Runtime's library (PyPI wheel) into .cache/
	@echo "ONNX Runtime: $(ORT_LIB)"

setup-gpu: deps             ## fetch onnxruntime-gpu's library into .cache/ (for --device cuda)
	@echo "ONNX Runtime (GPU): $(ORT_GPU_LIB)"

build: deps                 ## release build of all binaries (CPU)
	$(CARGO) build --release --workspace --bins

build-cuda: deps            ## release build with candle's CUDA backend (see README: GPU)
	scripts/build-cuda.sh

train: build                ## train CONFIG on DATA into runs/NAME (RESUME=1 to continue)
	$(RELEASE_BIN)/facerecon-train $(train_args)

resume:                     ## continue an interrupted run
	$(MAKE) train RESUME=1

unet: build setup           ## the recipe of exported/unet.onnx: 11 training stages on DATA, export (~5.9 h on 2 cores)
	scripts/train-unet.sh $(or $(DATA),../shared/data/utkface)

export: build setup         ## runs/NAME -> exported/NAME.onnx, verified against the trained model
	ORT_DYLIB_PATH=$(ORT_LIB) $(RELEASE_BIN)/facerecon-export --checkpoint runs/$(NAME) --out exported/$(NAME).onnx

infer: build setup          ## reconstruct INPUT (files/dirs) with exported/NAME.onnx into OUT
	ORT_DYLIB_PATH=$(ORT_LIB) $(RELEASE_BIN)/facerecon-infer --model exported/$(NAME).onnx --out $(OUT) $(INPUT)

demo: build setup           ## the main job on a fresh machine: data -> train -> export -> infer (minutes)
	ORT_DYLIB_PATH=$(ORT_LIB) scripts/demo.sh

test: setup                 ## all unit + end-to-end tests (installs what they need)
	$(CARGO) build --release --workspace --bins
	scripts/py-venv.sh >/dev/null
	ORT_DYLIB_PATH=$(ORT_LIB) FACERECON_PYTHON=$(CURDIR)/.cache/venv/bin/python $(CARGO) test --workspace --release

# rustfmt and clippy are rustup components; a toolchain without them gets them here (or a clear error).
lint-tools:
	@for tool in rustfmt clippy; do \
	  cmd=$$([ $$tool = rustfmt ] && echo fmt || echo clippy); \
	  $(CARGO) $$cmd --version >/dev/null 2>&1 && continue; \
	  command -v rustup >/dev/null 2>&1 || { echo "make lint: 'cargo $$cmd' is missing and there is no rustup to add the $$tool component" >&2; exit 1; }; \
	  echo "make lint: adding the $$tool component (rustup component add $$tool)"; \
	  rustup component add $$tool || { echo "make lint: could not add the $$tool component" >&2; exit 1; }; \
	done

lint: deps lint-tools       ## rustfmt --check, clippy and rustdoc with warnings denied (CI runs it before the tests)
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets --release -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --workspace --no-deps --release

FUZZ_CASES   ?= 2000
FUZZ_SECONDS ?= 300
# The property tests of the input surfaces (see README: Tests), with many more cases than `make test`.
# Each target is bounded by FUZZ_SECONDS of wall time (`timeout`; a timeout is reported, not a failure).
FUZZ_TARGETS = facerecon-runtime:fuzz_model facerecon-train:fuzz_config facerecon-infer:fuzz_inputs facerecon-capi:fuzz_args
fuzz: setup                 ## property/fuzz tests with FUZZ_CASES cases, each target bounded by FUZZ_SECONDS
	$(CARGO) build --release --workspace --bins
	@for t in $(FUZZ_TARGETS); do \
	  pkg=$${t%%:*}; test=$${t##*:}; \
	  $(CARGO) test --release -p $$pkg --test $$test --no-run -q || exit 1; \
	  echo "== $$pkg/$$test: $(FUZZ_CASES) cases, at most $(FUZZ_SECONDS) s"; \
	  ORT_DYLIB_PATH=$(ORT_LIB) FACERECON_FUZZ_CASES=$(FUZZ_CASES) timeout $(FUZZ_SECONDS) \
	    $(CARGO) test --release -q -p $$pkg --test $$test; rc=$$?; \
	  if [ $$rc = 124 ]; then echo "   (stopped after $(FUZZ_SECONDS) s, no failure so far)"; \
	  elif [ $$rc != 0 ]; then exit $$rc; fi; \
	done

crash-test:                 ## a training run SIGKILLed KILLS (50) times and resumed equals an uninterrupted one
	KILLS=$${KILLS:-50} scripts/crash-test.sh

# BENCH_ONLY=train: only the training-speed section (the same as `make bench-train`).
bench: build setup          ## side-by-side benchmark tables (see benches/README.md)
	ORT_DYLIB_PATH=$(ORT_LIB) benches/run.sh
	@[ -n "$$BENCH_ONLY" ] || scripts/py-venv.sh >/dev/null
	[ -n "$$BENCH_ONLY" ] || ORT_DYLIB_PATH=$(ORT_LIB) MODEL=$${MODEL:-.cache/bench/seed.onnx} benches/e2e_infer.sh
	[ -n "$$BENCH_ONLY" ] || ORT_DYLIB_PATH=$(ORT_LIB) scripts/bench-edge.sh

bench-train: build setup    ## training speed only: facerecon-train vs Keras and PyTorch on the same networks (ROUNDS=5)
	ORT_DYLIB_PATH=$(ORT_LIB) benches/train_peers.sh

bench-edge: setup           ## edge table: unet/edge x fp32/int8, threads 1 and 2, face and 1920x1080 frame (docs/edge.md)
	ORT_DYLIB_PATH=$(ORT_LIB) scripts/bench-edge.sh

bench-parity: build         ## loss curves of the fast kernels vs --reference-ops agree (benches/loss_parity.sh)
	benches/loss_parity.sh

check-onnx:                 ## onnx.checker (full) + Python onnxruntime on exported/NAME.onnx
	$$(scripts/py-venv.sh) scripts/check_onnx.py exported/$(NAME).onnx
