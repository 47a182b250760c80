// Loading the project's small WebAssembly modules (src/parallel/reduce.wat, src/train/adamw.wat), which
// scripts/build-wasm.ts compiles into base64 strings: compiled once per thread, instantiated over a
// memory the caller owns; and memories that may not be had (unlessOutOfMemory).

const modules = new Map<string, WebAssembly.Module | null>();

/** The module's exports over `memory`, or null where this engine cannot run it (no WebAssembly SIMD). */
export function instantiate(base64: string, memory: WebAssembly.Memory): WebAssembly.Exports | null {
  if (!modules.has(base64)) {
    const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
    modules.set(base64, WebAssembly.validate(bytes) ? new WebAssembly.Module(bytes) : null);
  }
  const module = modules.get(base64)!;
  return module ? new WebAssembly.Instance(module, { env: { memory } }).exports : null;
}

/** make(), or null when it throws RangeError: a WebAssembly.Memory the engine cannot allocate. */
export function unlessOutOfMemory<T>(make: () => T): T | null {
  try {
    return make();
  } catch (e) {
    if (e instanceof RangeError) return null;
    throw e;
  }
}
