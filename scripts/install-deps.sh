#!/usr/bin/env bash
# Installs the system packages the build needs, only if missing: protoc (candle-onnx's build script compiles
# onnx.proto with prost-build). Debian packages only.
set -euo pipefail
if ! command -v protoc >/dev/null 2>&1 && [ -z "${PROTOC:-}" ]; then
  echo "install-deps: installing protobuf-compiler (Debian)" >&2
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get install -y -q protobuf-compiler >/dev/null 2>&1 || { $sudo apt-get update -q >/dev/null && $sudo apt-get install -y -q protobuf-compiler >/dev/null; }
fi
command -v protoc >/dev/null 2>&1 || [ -n "${PROTOC:-}" ] || { echo "install-deps: protoc is missing" >&2; exit 1; }
