#!/usr/bin/env bash
# `npm run gpu-pack`: builds gpu-pack/ (git-ignored), a folder that runs the WebGPU speed bench
# (bench/gpu-main.ts) in Node through Dawn on a bare Linux x86-64 machine with an NVIDIA GPU and nothing
# installed: no Node, no npm, no network. It holds
#   node.xz             this machine's Node binary, xz-compressed (run.sh unpacks it to a temp folder)
#   dawn.node.xz        Dawn's Node binding from the `webgpu` package (linux-x64)
#   bench.mjs           the bench bundled into one file: tfjs, tfjs-backend-webgpu, the `webgpu` package's JS,
#                       gpt-tokenizer's GPT-2 BPE, comlink; the same file is its DDP ranks' worker script
#   lib/libvulkan.so.1  the Vulkan loader (Debian's libvulkan1), put on LD_LIBRARY_PATH by run.sh
#   lib/compat/         libstdc++.so.6 of this machine, used only if the target's is older than dawn.node needs
#   lib/x11/            libX11, libXext and their dependencies, used only if the target has no libX11.so.6
#                       (NVIDIA's Vulkan driver, libGLX_nvidia.so.0, links them)
#   data/               the corpus (tinyshakespeare.txt)
#   torch_anchor.py     torch fp32 matmul TFLOP/s (TF32 off), if python3 has torch with CUDA
#   run.sh              finds the Vulkan driver, prints the adapter, runs the bench: see its header
# and checks that the folder stays under 45 MiB.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PACK=${GPU_PACK_DIR:-$ROOT/gpu-pack}
LIMIT_MIB=45
NODE_BIN=${NODE_BIN:-$(command -v node)}
NODE_BIN=$(readlink -f "$NODE_BIN")
DAWN=$ROOT/node_modules/webgpu/dist/linux-x64/dawn.node
CORPUS=$ROOT/public/data/tinyshakespeare.txt
[ -f "$CORPUS" ] || CORPUS=/work/shared/data/tinyshakespeare.txt
say() { echo "[gpu-pack] $*"; }

[ "$(uname -m)" = x86_64 ] || { echo "gpu-pack: builds an x86-64 pack; this machine is $(uname -m)" >&2; exit 1; }
[ -f "$DAWN" ] || { echo "gpu-pack: $DAWN is missing (npm ci)" >&2; exit 1; }
[ -f "$CORPUS" ] || { echo "gpu-pack: no corpus (public/data/tinyshakespeare.txt)" >&2; exit 1; }
command -v xz >/dev/null || { echo "gpu-pack: needs xz (apt-get install xz-utils)" >&2; exit 1; }

mkdir -p "$PACK/lib/compat" "$PACK/data"

# ---- Node and Dawn, compressed (reused while the source binary is unchanged: xz -9 of Node takes ~1 min)
pack_xz() { # SRC DEST
  local src=$1 dest=$2 stamp
  stamp="$(sha256sum "$src" | cut -c1-64)"
  if [ -f "$dest" ] && [ "$(cat "$dest.src-sha256" 2>/dev/null)" = "$stamp" ]; then say "$(basename "$dest"): unchanged"; return; fi
  say "compressing $src ($(du -h "$src" | cut -f1)) -> $(basename "$dest")"
  xz -T0 -9 -c "$src" > "$dest.tmp" && mv "$dest.tmp" "$dest"
  echo "$stamp" > "$dest.src-sha256"
}
pack_xz "$NODE_BIN" "$PACK/node.xz"
pack_xz "$DAWN" "$PACK/dawn.node.xz"

# ---- the bench, one file ----------------------------------------------------------------------------
say "bundling bench/gpu-main.ts -> bench.mjs"
"$ROOT/node_modules/.bin/esbuild" "$ROOT/bench/gpu-main.ts" --bundle --platform=node --format=esm --target=node20 \
  --minify --keep-names --legal-comments=none --log-level=warning \
  --banner:js="import { createRequire as __gpuPackRequire } from 'node:module'; const require = __gpuPackRequire(import.meta.url);" \
  --outfile="$PACK/bench.mjs"

# ---- the Vulkan loader (Debian's libvulkan1), and a libstdc++ for old systems ------------------------
if [ ! -f "$PACK/lib/libvulkan.so.1" ]; then
  TMPD=$(mktemp -d)
  say "fetching libvulkan1 (apt-get download)"
  (cd "$TMPD" && apt-get download libvulkan1 >/dev/null 2>&1 && dpkg -x libvulkan1_*.deb x) || { echo "gpu-pack: apt-get download libvulkan1 failed" >&2; exit 1; }
  cp -L "$TMPD"/x/usr/lib/x86_64-linux-gnu/libvulkan.so.1 "$PACK/lib/libvulkan.so.1"
  rm -rf "$TMPD"
fi
STDCXX=$(ldconfig -p | awk '/libstdc\+\+\.so\.6 .*x86-64/ {print $NF; exit}')
cp -L "$STDCXX" "$PACK/lib/compat/libstdc++.so.6"
# NVIDIA's Vulkan driver (libGLX_nvidia.so.0) links libX11 and libXext; a bare machine may lack them. run.sh adds
# lib/x11 to the library path only when the system has no libX11.so.6.
mkdir -p "$PACK/lib/x11"
for l in libX11.so.6 libXext.so.6 libxcb.so.1 libXau.so.6 libXdmcp.so.6 libbsd.so.0 libmd.so.0; do
  f=$(ldconfig -p | awk -v n="$l" '$1 == n && /x86-64/ {print $NF; exit}')
  [ -n "$f" ] || { echo "gpu-pack: $l not found here (apt-get install libx11-6 libxext6)" >&2; exit 1; }
  cp -L "$f" "$PACK/lib/x11/$l"
done
cp "$CORPUS" "$PACK/data/tinyshakespeare.txt"
cp "$ROOT/scripts/gpu-torch-anchor.py" "$PACK/torch_anchor.py"
cp "$ROOT/scripts/gpu-pack-run.sh" "$PACK/run.sh"
chmod +x "$PACK/run.sh"
rm -f "$PACK"/*.src-sha256.tmp

{
  echo "gpu-pack built $(date -u +%Y-%m-%dT%H:%M:%SZ) from $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?') (uncommitted changes possible)"
  echo "node $("$NODE_BIN" --version) ($NODE_BIN), webgpu $(node -p "require('$ROOT/node_modules/webgpu/package.json').version"), tfjs $(node -p "require('$ROOT/node_modules/@tensorflow/tfjs/package.json').version")"
  echo "needs: glibc >= 2.34 (dawn.node), x86-64, an NVIDIA driver with Vulkan (libGLX_nvidia.so.0)"
  (cd "$PACK" && find . -type f ! -name MANIFEST ! -name '*.src-sha256' -printf '%P\n' | sort | xargs sha256sum)
} > "$PACK/MANIFEST"

BYTES=$(find "$PACK" -type f -printf '%s\n' | awk '{s+=$1} END {print s}')
MIB=$(awk -v b="$BYTES" 'BEGIN {printf "%.1f", b / 1048576}')
say "pack: $PACK, $MIB MiB"
(cd "$PACK" && find . -type f -printf '%s\t%P\n' | sort -rn | awk -F'\t' '{printf "  %8.2f MiB  %s\n", $1/1048576, $2}')
if awk -v b="$BYTES" -v l="$LIMIT_MIB" 'BEGIN {exit !(b > l * 1048576)}'; then
  echo "gpu-pack: the pack is $MIB MiB, over the $LIMIT_MIB MiB limit" >&2
  exit 1
fi
say "ok (< $LIMIT_MIB MiB). Run: bash $PACK/run.sh OUTDIR [--presets shakespeare-cpu,baby,gpt2] [--strategies single,ddp] [--steps N] [--allow-software]"
