// The parameter table: every GPT-2 parameter, its shape, and its offset in one flat float32 vector.
// Gradients and AdamW's m and v use the same layout. Parameters are grouped into units, each one
// contiguous range: the root unit {wte, wpe, ln_f} first, then one unit per transformer block.
// Units are what FSDP shards and gathers, and where DDP's gradient buckets may break.
//
// Weights are stored (in, out), as Hugging Face's GPT-2 Conv1D does, so a linear layer is x @ W + b:
// the only matmul orientation that runs fast on tfjs-wasm (see ../../README.md, Performance).

import type { ModelConfig } from './config';

export interface ParamSpec {
  name: string; // GPT-2 / Hugging Face name, e.g. "h.0.attn.c_attn.weight"
  shape: number[];
  size: number;
  offset: number; // into the flat vector
  unit: number; // 0 = root {wte, wpe, ln_f}, 1 + l = block l
  decay: boolean; // AdamW weight decay applies (2-D weights, as nanoGPT)
}

export interface UnitSpec {
  index: number;
  name: string; // "root" or "h.{l}"
  offset: number;
  size: number;
  params: ParamSpec[];
}

export interface ParamTable {
  params: ParamSpec[];
  units: UnitSpec[];
  byName: Map<string, ParamSpec>;
  total: number;
}

/** The per-block parameter names and shapes, in checkpoint order. */
export function blockParamShapes(C: number): [string, number[]][] {
  return [
    ['ln_1.weight', [C]],
    ['ln_1.bias', [C]],
    ['attn.c_attn.weight', [C, 3 * C]],
    ['attn.c_attn.bias', [3 * C]],
    ['attn.c_proj.weight', [C, C]],
    ['attn.c_proj.bias', [C]],
    ['ln_2.weight', [C]],
    ['ln_2.bias', [C]],
    ['mlp.c_fc.weight', [C, 4 * C]],
    ['mlp.c_fc.bias', [4 * C]],
    ['mlp.c_proj.weight', [4 * C, C]],
    ['mlp.c_proj.bias', [C]],
  ];
}

export function buildParamTable(cfg: ModelConfig): ParamTable {
  const C = cfg.n_embd;
  const unitsShapes: [string, [string, number[]][]][] = [
    ['root', [['wte', [cfg.vocab_size, C]], ['wpe', [cfg.block_size, C]], ['ln_f.weight', [C]], ['ln_f.bias', [C]]]],
  ];
  for (let l = 0; l < cfg.n_layer; l++) {
    unitsShapes.push([`h.${l}`, blockParamShapes(C).map(([n, s]) => [`h.${l}.${n}`, s] as [string, number[]])]);
  }
  const params: ParamSpec[] = [];
  const units: UnitSpec[] = [];
  let offset = 0;
  unitsShapes.forEach(([unitName, shapes], unit) => {
    const start = offset;
    const unitParams: ParamSpec[] = [];
    for (const [name, shape] of shapes) {
      const size = shape.reduce((a, b) => a * b, 1);
      const spec = { name, shape, size, offset, unit, decay: shape.length === 2 };
      params.push(spec);
      unitParams.push(spec);
      offset += size;
    }
    units.push({ index: unit, name: unitName, offset: start, size: offset - start, params: unitParams });
  });
  return { params, units, byName: new Map(params.map((p) => [p.name, p])), total: offset };
}

/** Deterministic PRNG (mulberry32): the same seed gives the same numbers on every backend and machine. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Mixes several integers into one 32-bit seed (for per-step, per-rank streams). */
export function mixSeed(...parts: number[]): number {
  let h = 0x811c9dc5;
  for (const p of parts) {
    h = Math.imul(h ^ (p >>> 0), 0x01000193) >>> 0;
    h = Math.imul(h ^ (h >>> 15), 0x2c1b3c6d) >>> 0;
  }
  return h >>> 0;
}

/**
 * GPT-2's initialisation (as nanoGPT): weights N(0, 0.02), residual projections (c_proj) N(0, 0.02/sqrt(2L)),
 * biases 0, LayerNorm weights 1. Returns the flat parameter vector.
 */
export function initParams(table: ParamTable, cfg: ModelConfig, seed: number): Float32Array {
  const flat = new Float32Array(table.total);
  const rand = mulberry32(mixSeed(seed, 0x9e3779b9));
  const normal = () => {
    // Box-Muller; 1 - u keeps log away from 0.
    const u = 1 - rand();
    const v = rand();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  };
  for (const p of table.params) {
    const view = flat.subarray(p.offset, p.offset + p.size);
    if (p.name.endsWith('.bias')) continue;
    if (p.name.startsWith('ln_') || /\.ln_\d\.weight$/.test(p.name)) {
      view.fill(1);
      continue;
    }
    const std = p.name.endsWith('c_proj.weight') ? 0.02 / Math.sqrt(2 * cfg.n_layer) : 0.02;
    for (let i = 0; i < view.length; i++) view[i] = std * normal();
  }
  return flat;
}

/** Views of a flat vector, one per parameter (no copies). */
export function paramViews(table: ParamTable, flat: Float32Array): Map<string, Float32Array> {
  return new Map(table.params.map((p) => [p.name, flat.subarray(p.offset, p.offset + p.size)]));
}
