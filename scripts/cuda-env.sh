#!/usr/bin/env bash
# CUDA build environment from PyPI wheels, for `cargo build --release --features cuda` on a
# machine without a system CUDA toolkit (and without a GPU).
#
#   source scripts/cuda-env.sh          # set up (idempotent) + export the build variables
#   cargo build --release --features cuda --bin iisan    # -> target/cuda/release/iisan
#   bash scripts/cuda-env.sh            # only set up .cuda/ (exports do not outlive the run)
#
# What it does, all under <repo>/.cuda/ (git-ignored):
#   .cuda/py/    pip --target install of the CUDA 13.0 toolkit wheels (pinned below). They unpack
#                into one toolkit root, .cuda/py/nvidia/cu13/{bin,include,lib,nvvm}: nvcc, headers,
#                and only *versioned* shared libraries (libcublas.so.13, libcurand.so.10, ...).
#   .cuda/stub/  a stub libcuda.so (soname libcuda.so.1) exporting every cu* driver symbol that
#                cudarc declares -- no wheel ships the driver library -- plus unversioned
#                libcublas.so, libcublasLt.so, libcurand.so, libcudart.so, libnvrtc.so symlinks so
#                the linker (cudarc uses `dynamic-linking`) finds them. The stub is link-time only.
# Pinned to CUDA 13.0 on purpose: the GPU machine runs a 580 driver (CUDA 13.0), and PTX from a
# newer nvcc fails to load there (CUDA_ERROR_UNSUPPORTED_PTX_VERSION).
# Exports: PATH, CUDA_HOME, CUDA_PATH, CUDA_COMPUTE_CAP=90 (H100/H200), CUDARC_CUDA_VERSION=13000,
# RUSTFLAGS (+= -L native=.cuda/stub) and CARGO_TARGET_DIR=<repo>/target/cuda (a separate target
# dir, so the CPU build in target/ is not invalidated).
# Overridable: PYTHON (default python3), CUDA_COMPUTE_CAP.
#
# Running the binary (GPU machine): it needs the real driver libcuda.so.1 (from the NVIDIA driver,
# already on the loader path) plus libcublas.so.13, libcublasLt.so.13, libcurand.so.10,
# libcudart.so.13 and libnvrtc.so.13 (+ libnvrtc-builtins.so.13.0, dlopened by nvrtc). PyTorch's
# venv there carries the same cu13 wheels, all in one dir, site-packages/nvidia/cu13/lib:
#   export LD_LIBRARY_PATH="$(/opt/torch/.venv/bin/python3 -c 'import nvidia, os; print(os.path.join(list(nvidia.__path__)[0], "cu13", "lib"))')${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# Check with `ldd target/cuda/release/iisan | grep 'not found'` (must print nothing). Never put
# .cuda/stub on LD_LIBRARY_PATH on the GPU machine: the stub libcuda.so.1 would shadow the driver.

_iisan_cuda_env() {
    local repo py_dir root stub_dir python cudarc_ver cudarc_dir spec name ver missing lib target d
    repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)" || return 1
    py_dir="$repo/.cuda/py"
    root="$py_dir/nvidia/cu13"
    stub_dir="$repo/.cuda/stub"
    python="${PYTHON:-python3}"

    # Toolkit (nvcc + crt + nvvm + runtime + cccl) must be installed together from one release
    # (13.0 update 2); the link-time libraries are the versions of that same release.
    local -a specs=(
        nvidia-cuda-nvcc==13.0.88
        nvidia-nvvm==13.0.88
        nvidia-cuda-crt==13.0.88
        nvidia-cuda-runtime==13.0.96
        nvidia-cuda-cccl==13.0.85
        nvidia-cublas==13.1.0.3
        nvidia-curand==10.4.0.35
        nvidia-cuda-nvrtc==13.0.88
    )

    # 1. pip wheels (skipped when every pinned dist-info is present).
    missing=()
    for spec in "${specs[@]}"; do
        name="${spec%%==*}"; ver="${spec##*==}"
        [[ -d "$py_dir/${name//-/_}-$ver.dist-info" ]] || missing+=("$spec")
    done
    if ((${#missing[@]})); then
        echo "cuda-env: pip installing ${#missing[@]} wheel(s) into .cuda/py: ${missing[*]}"
        mkdir -p "$py_dir"
        # --upgrade: replace other versions already in the target dir. All deps are pinned above.
        if ! "$python" -m pip install --quiet --disable-pip-version-check --no-deps --upgrade \
            --target "$py_dir" "${specs[@]}"; then
            echo "cuda-env: ERROR: pip install of the CUDA 13.0 wheels into $py_dir failed (network/PyPI? see pip output above)" >&2
            return 1
        fi
        # pip --target never deletes: drop dist-infos of other versions so the check above stays exact.
        for spec in "${specs[@]}"; do
            name="${spec%%==*}"; ver="${spec##*==}"
            for d in "$py_dir/${name//-/_}"-*.dist-info; do
                [[ -d "$d" && "$d" != "$py_dir/${name//-/_}-$ver.dist-info" ]] && rm -rf "$d"
            done
        done
        # Wheels may drop the executable bit.
        chmod +x "$root"/bin/* "$root"/nvvm/bin/* 2>/dev/null
    else
        echo "cuda-env: CUDA 13.0 wheels already in .cuda/py (nvcc 13.0.88, cublas 13.1.0.3, curand 10.4.0.35, nvrtc 13.0.88)"
    fi
    if [[ ! -x "$root/bin/nvcc" ]]; then
        echo "cuda-env: ERROR: $root/bin/nvcc missing after install (wheel layout changed?)" >&2
        return 1
    fi

    # 2. libcuda.so stub from cudarc's driver declarations (rebuilt when the cudarc version changes).
    cudarc_ver="$(awk '/^name = "cudarc"$/ {getline; gsub(/version = |"/, ""); print; exit}' "$repo/Cargo.lock" 2>/dev/null)"
    if [[ -z "$cudarc_ver" ]]; then
        echo "cuda-env: cudarc not in Cargo.lock yet; running cargo fetch"
        (cd "$repo" && cargo fetch --quiet) || { echo "cuda-env: ERROR: cargo fetch failed" >&2; return 1; }
        cudarc_ver="$(awk '/^name = "cudarc"$/ {getline; gsub(/version = |"/, ""); print; exit}' "$repo/Cargo.lock")"
    fi
    if [[ -f "$stub_dir/libcuda.so" && "$(cat "$stub_dir/.cudarc-version" 2>/dev/null)" == "$cudarc_ver" ]]; then
        echo "cuda-env: libcuda.so stub already built (cudarc $cudarc_ver)"
    else
        cudarc_dir="$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/"cudarc-$cudarc_ver" 2>/dev/null | head -n1)"
        if [[ -z "$cudarc_dir" ]]; then
            (cd "$repo" && cargo fetch --quiet) || { echo "cuda-env: ERROR: cargo fetch failed" >&2; return 1; }
            cudarc_dir="$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/"cudarc-$cudarc_ver" 2>/dev/null | head -n1)"
        fi
        if [[ -z "$cudarc_dir" || ! -f "$cudarc_dir/src/driver/sys/mod.rs" ]]; then
            echo "cuda-env: ERROR: cudarc-$cudarc_ver sources (src/driver/sys/mod.rs) not found under ~/.cargo/registry/src" >&2
            return 1
        fi
        echo "cuda-env: building .cuda/stub/libcuda.so from $cudarc_dir/src/driver/sys/mod.rs"
        mkdir -p "$stub_dir"
        {
            echo "/* Link-time stub of libcuda.so.1 generated by scripts/cuda-env.sh from cudarc-$cudarc_ver. Never load it. */"
            grep -oE '^pub unsafe fn cu[A-Za-z0-9_]+' "$cudarc_dir/src/driver/sys/mod.rs" | sed 's/^pub unsafe fn //' \
                | sort -u | sed 's/.*/int &(void) { return 999; }/'
        } >"$stub_dir/libcuda_stub.c"
        if ! cc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$stub_dir/libcuda.so" "$stub_dir/libcuda_stub.c"; then
            echo "cuda-env: ERROR: compiling the libcuda.so stub failed" >&2
            return 1
        fi
        ln -sf libcuda.so "$stub_dir/libcuda.so.1"
        echo "$cudarc_ver" >"$stub_dir/.cudarc-version"
        echo "cuda-env: stub exports $(grep -c return "$stub_dir/libcuda_stub.c") driver symbols"
    fi
    # Unversioned link names -> the wheels' versioned libraries (cheap; refreshed every time).
    for lib in libcublas.so.13 libcublasLt.so.13 libcurand.so.10 libcudart.so.13 libnvrtc.so.13; do
        target="$root/lib/$lib"
        if [[ ! -e "$target" ]]; then
            echo "cuda-env: ERROR: $target missing (wheel layout changed?)" >&2
            return 1
        fi
        ln -sfn "$target" "$stub_dir/${lib%%.so*}.so"
    done

    # 3. Build environment.
    case ":$PATH:" in *":$root/bin:"*) ;; *) export PATH="$root/bin:$PATH" ;; esac
    export CUDA_HOME="$root" CUDA_PATH="$root"
    export CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-90}"
    export CUDARC_CUDA_VERSION=13000
    case " ${RUSTFLAGS:-} " in
        *" -L native=$stub_dir "*) ;;
        *) export RUSTFLAGS="${RUSTFLAGS:+$RUSTFLAGS }-L native=$stub_dir" ;;
    esac
    export CARGO_TARGET_DIR="$repo/target/cuda"
    echo "cuda-env: $(nvcc --version | tail -n2 | head -n1)"
    echo "cuda-env: CUDA_HOME=$CUDA_HOME CUDA_COMPUTE_CAP=$CUDA_COMPUTE_CAP CUDARC_CUDA_VERSION=$CUDARC_CUDA_VERSION"
    echo "cuda-env: RUSTFLAGS=\"$RUSTFLAGS\" CARGO_TARGET_DIR=$CARGO_TARGET_DIR"
    echo "cuda-env: ready: cargo build --release --features cuda --bin iisan"
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    _iisan_cuda_env
    exit $?
else
    _iisan_cuda_env
fi
