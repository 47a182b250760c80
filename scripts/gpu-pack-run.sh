#!/usr/bin/env bash
# The GPU pack's run script (scripts/gpu-pack.sh copies it to gpu-pack/run.sh). Runs the WebGPU speed
# bench with the pack's own Node on a machine where nothing is installed:
#
#   bash run.sh OUTDIR [--presets shakespeare-cpu,baby,gpt2] [--strategies single,ddp] [--steps N]
#                      [--allow-software] [any other flag of the bench: --warmup, --cap-s, --deadline-s,
#                      --gpt2-batch, --torch off, --matmul-max]
#
# 1. unpacks Node and dawn.node into a temp folder (xz, or python3's lzma where xz is missing)
# 2. finds the Vulkan driver (ICD): $VK_DRIVER_FILES or $VK_ICD_FILENAMES if set, else
#    /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json, /usr/share/vulkan/icd.d/nvidia_icd.json,
#    /etc/vulkan/icd.d/nvidia_icd.json, other nvidia*.json there; else writes one for libGLX_nvidia.so.0
#    if the driver's libraries are found (/usr/local/nvidia/lib64, ...). Prints which.
# 3. LD_LIBRARY_PATH: the pack's lib/ (the Vulkan loader), the driver's library folder, the pack's
#    libstdc++ only if the system's is older than dawn.node needs, the pack's libX11 & co only if the
#    system has none; XDG_RUNTIME_DIR
# 4. probes the adapter (vendor, architecture, description, software or not; the loader's log goes to
#    OUTDIR/vulkan-probe.log) and stops on a software adapter unless --allow-software
# 5. runs the bench: OUTDIR/gpu-bench.json (rewritten after every step), OUTDIR/run.log (this output).
#    Hard time limit: $GPU_BENCH_TIMEOUT seconds (default 345) for the bench itself.
set -uo pipefail
PACK=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [ $# -lt 1 ] || [ "${1#-}" != "$1" ]; then
  sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
OUT=$1
shift
mkdir -p "$OUT" || exit 1
OUT=$(cd "$OUT" && pwd)
exec > >(tee -a "$OUT/run.log") 2>&1
T0=$(date +%s)
say() { echo "[run.sh $(( $(date +%s) - T0 ))s] $*"; }
ALLOW_SOFTWARE=0
for a in "$@"; do [ "$a" = --allow-software ] && ALLOW_SOFTWARE=1; done

RUN=$(mktemp -d "${TMPDIR:-/tmp}/gpu-pack.XXXXXX") || exit 1
trap 'rm -rf "$RUN"' EXIT

# ---- 1. unpack -----------------------------------------------------------------------------------------
unxz_to() { # SRC DEST
  if command -v xz >/dev/null 2>&1 && xz -dc "$1" > "$2" 2>/dev/null; then return 0; fi
  if command -v python3 >/dev/null 2>&1 && python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"), 1 << 20)' "$1" "$2"; then return 0; fi
  echo "run.sh: needs xz or python3 (lzma) to unpack $1" >&2
  return 1
}
mkdir -p "$RUN/dist/linux-x64"
unxz_to "$PACK/node.xz" "$RUN/node" && chmod +x "$RUN/node" || { echo "run.sh: cannot unpack node" >&2; exit 1; }
unxz_to "$PACK/dawn.node.xz" "$RUN/dist/linux-x64/dawn.node" || { echo "run.sh: cannot unpack dawn.node" >&2; exit 1; }
cp "$PACK/bench.mjs" "$PACK/torch_anchor.py" "$RUN/" # bench.mjs finds dist/linux-x64/dawn.node next to itself
NODE="$RUN/node"
say "unpacked to $RUN: $("$NODE" --version 2>&1)"

# ---- 2. the Vulkan driver --------------------------------------------------------------------------------
LIBDIRS="/usr/local/nvidia/lib64 /usr/local/nvidia/lib /usr/lib/x86_64-linux-gnu /usr/lib64 /lib/x86_64-linux-gnu /usr/lib"
find_lib() { # NAME -> the folder holding it
  local d
  for d in $LIBDIRS; do [ -e "$d/$1" ] && { echo "$d"; return 0; }; done
  ldconfig -p 2>/dev/null | awk -v n="$1" '$1 == n {print $NF; exit}' | xargs -r dirname
}
ICD="" ICD_FROM="" LIBNAME=""
if [ -n "${VK_DRIVER_FILES:-}" ]; then ICD=$VK_DRIVER_FILES ICD_FROM="\$VK_DRIVER_FILES"
elif [ -n "${VK_ICD_FILENAMES:-}" ]; then ICD=$VK_ICD_FILENAMES ICD_FROM="\$VK_ICD_FILENAMES"
else
  for f in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.json /etc/vulkan/icd.d/nvidia_icd.json \
           /usr/local/nvidia/share/vulkan/icd.d/nvidia*.json /usr/local/nvidia/icd.d/nvidia*.json /usr/share/vulkan/icd.d/nvidia*.json \
           /etc/vulkan/icd.d/nvidia*.json /usr/local/share/vulkan/icd.d/nvidia*.json; do
    [ -f "$f" ] && { ICD=$f ICD_FROM="found"; break; }
  done
  if [ -z "$ICD" ]; then
    GLX=$(find_lib libGLX_nvidia.so.0)
    if [ -n "$GLX" ]; then
      ICD=$RUN/nvidia_icd.json ICD_FROM="written for $GLX/libGLX_nvidia.so.0 (no ICD file found)"
      printf '{"file_format_version": "1.0.0", "ICD": {"library_path": "%s/libGLX_nvidia.so.0", "api_version": "1.3.0"}}\n' "$GLX" > "$ICD"
    fi
  fi
fi
NVLIB=""
if [ -n "$ICD" ]; then
  export VK_ICD_FILENAMES=$ICD VK_DRIVER_FILES=$ICD
  say "Vulkan ICD: $ICD ($ICD_FROM)"
  for f in ${ICD//:/ }; do [ -f "$f" ] && { sed 's/^/    /' "$f"; echo; }; done
  # A library_path without a folder is looked up on the library path: add the folder that has it.
  LIBNAME=$(sed -n 's/.*"library_path"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p' "${ICD%%:*}" 2>/dev/null | head -1)
  if [ -n "$LIBNAME" ] && [ "${LIBNAME#*/}" = "$LIBNAME" ]; then # a bare soname (no folder at all)
    NVLIB=$(find_lib "$LIBNAME")
    say "driver library $LIBNAME: ${NVLIB:-NOT FOUND in $LIBDIRS}"
  fi
else
  say "Vulkan ICD: none found (no \$VK_DRIVER_FILES/\$VK_ICD_FILENAMES, no nvidia_icd.json, no libGLX_nvidia.so.0)"
fi
[ -z "$NVLIB" ] && [ -d /usr/local/nvidia/lib64 ] && NVLIB=/usr/local/nvidia/lib64

# ---- 3. libraries ------------------------------------------------------------------------------------------
LDP="$PACK/lib${NVLIB:+:$NVLIB}"
SYS_STDCXX=$(find_lib libstdc++.so.6)
if [ -z "$SYS_STDCXX" ] || ! grep -qa GLIBCXX_3.4.30 "$SYS_STDCXX/libstdc++.so.6" 2>/dev/null; then
  LDP="$LDP:$PACK/lib/compat"
  say "libstdc++: the system's (${SYS_STDCXX:-none}) lacks GLIBCXX_3.4.30: using the pack's"
fi
if [ -z "$(find_lib libX11.so.6)" ]; then
  LDP="$LDP:$PACK/lib/x11"
  say "libX11: none on the system (NVIDIA's Vulkan driver links it): using the pack's"
fi
export LD_LIBRARY_PATH="$LDP${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-$RUN}
say "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
say "glibc: $(getconf GNU_LIBC_VERSION 2>/dev/null || echo unknown) (dawn.node needs >= 2.34); $(uname -srm); $(nproc 2>/dev/null || echo '?') cores"
command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | sed 's/^/    /'
[ -x /usr/local/nvidia/bin/nvidia-smi ] && ! command -v nvidia-smi >/dev/null 2>&1 && /usr/local/nvidia/bin/nvidia-smi -L 2>/dev/null | sed 's/^/    /'

# ---- 4. the adapter ------------------------------------------------------------------------------------------
say "probing the WebGPU adapter"
VK_LOADER_DEBUG=error,warn,driver "$NODE" "$RUN/bench.mjs" --probe $([ $ALLOW_SOFTWARE = 1 ] && echo --allow-software) > "$OUT/probe.out" 2> "$OUT/vulkan-probe.log"
RC=$?
cat "$OUT/probe.out"
if [ $RC -ne 0 ]; then
  if [ $RC -eq 3 ]; then say "a software (fallback) adapter: no GPU figures from it (pass --allow-software to run anyway)"
  else
    say "no usable WebGPU adapter (exit $RC). The Vulkan loader said (last lines of $OUT/vulkan-probe.log):"
    tail -n 40 "$OUT/vulkan-probe.log"
    for d in /usr/local/nvidia/lib64 /usr/local/nvidia/lib; do [ -d "$d" ] && { echo "  $d:"; ls "$d" | grep -iE 'glx|vulkan|glcore|glvk|gpucomp|egl' | sed 's/^/    /'; }; done
    if [ -n "$NVLIB" ] && [ -n "${LIBNAME:-}" ] && command -v ldd >/dev/null 2>&1; then
      echo "  ldd $NVLIB/$LIBNAME (missing libraries):"; ldd "$NVLIB/$LIBNAME" 2>&1 | grep -i 'not found' | sed 's/^/    /'
    fi
  fi
  exit $RC
fi

# ---- 5. the bench --------------------------------------------------------------------------------------------
say "running the bench (limit ${GPU_BENCH_TIMEOUT:-345} s): $*"
timeout -k 10 "${GPU_BENCH_TIMEOUT:-345}" "$NODE" --max-old-space-size=16384 "$RUN/bench.mjs" "$OUT" --data "$PACK/data/tinyshakespeare.txt" "$@"
RC=$?
[ $RC -eq 124 ] && say "the bench hit the time limit; $OUT/gpu-bench.json has what finished"
say "done (exit $RC) in $(( $(date +%s) - T0 )) s; results: $OUT/gpu-bench.json, log: $OUT/run.log"
exit $RC
