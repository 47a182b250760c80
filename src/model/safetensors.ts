// The safetensors container (Hugging Face): an 8-byte little-endian header length N, N bytes of JSON
// ({name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}}, padded with spaces to a
// multiple of 8), then the tensors' bytes, little-endian, each at its offsets into that data. The format
// is this small, and the npm packages for it are unmaintained or made for reading remote files, so the
// reader and writer are here, with every check a hostile or broken file needs.

import { CheckpointError } from './llmc';

export type Dtype = 'F32' | 'F16' | 'BF16';
const BYTES: Record<Dtype, number> = { F32: 4, F16: 2, BF16: 2 };

export interface Tensor {
  shape: number[];
  data: Float32Array; // F16 and BF16 are widened to float32 on load
}

/** The tensors of a safetensors file, by name, and its metadata. */
export function readSafetensors(buf: ArrayBuffer, what = 'the safetensors file'): { tensors: Map<string, Tensor>; metadata: Record<string, string> } {
  const fail = (why: string) => new CheckpointError(`${what}: ${why}`);
  if (buf.byteLength < 8) throw fail(`${buf.byteLength} bytes, shorter than the 8-byte header length: not a safetensors file`);
  const n = Number(new DataView(buf).getBigUint64(0, true));
  if (n < 2 || 8 + n > buf.byteLength) throw fail(`its header says ${n} bytes of JSON, but the file has ${buf.byteLength - 8} after the length: not a safetensors file, or truncated`);
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(new Uint8Array(buf, 8, n)));
  } catch (e) {
    throw fail(`its header is not valid JSON (${(e as Error).message}): not a safetensors file`);
  }
  if (!header || typeof header !== 'object' || Array.isArray(header)) throw fail('its header is not a JSON object');
  const data = 8 + n;
  const size = buf.byteLength - data;
  const tensors = new Map<string, Tensor>();
  const spans: [number, number, string][] = [];
  let metadata: Record<string, string> = {};
  for (const [name, raw] of Object.entries(header)) {
    if (name === '__metadata__') {
      metadata = (raw ?? {}) as Record<string, string>;
      continue;
    }
    const t = raw as { dtype?: string; shape?: number[]; data_offsets?: [number, number] };
    if (!t || typeof t !== 'object' || !Array.isArray(t.shape) || !Array.isArray(t.data_offsets)) throw fail(`tensor "${name}" has no shape or data_offsets`);
    if (!Object.hasOwn(BYTES, t.dtype ?? "")) throw fail(`tensor "${name}" is ${t.dtype}; this reads F32, F16 and BF16 (convert the file to one of them)`);
    const dtype = t.dtype as Dtype;
    const [begin, end] = t.data_offsets;
    const count = t.shape.reduce((a, b) => a * b, 1);
    if (!t.shape.every((d) => Number.isInteger(d) && d >= 0) || !Number.isInteger(begin) || !Number.isInteger(end) || begin < 0 || end > size || end - begin !== count * BYTES[dtype]) {
      throw fail(`tensor "${name}" (${dtype} ${JSON.stringify(t.shape)}) claims bytes ${begin} to ${end} of ${size}: the header lies about its offsets or size`);
    }
    spans.push([begin, end, name]);
    tensors.set(name, { shape: t.shape, data: widen(buf, data + begin, count, dtype) });
  }
  spans.sort((a, b) => a[0] - b[0]);
  for (let i = 1; i < spans.length; i++) {
    if (spans[i][0] < spans[i - 1][1]) throw fail(`tensors "${spans[i - 1][2]}" and "${spans[i][2]}" overlap in the data: a corrupt header`);
  }
  return { tensors, metadata };
}

/** The tensor's values as float32 (copied: the result owns its memory). */
function widen(buf: ArrayBuffer, at: number, count: number, dtype: Dtype): Float32Array {
  const bytes = new Uint8Array(buf, at, count * BYTES[dtype]).slice(); // aligned, and owned
  if (dtype === 'F32') return new Float32Array(bytes.buffer);
  const halves = new Uint16Array(bytes.buffer);
  const out = new Float32Array(count);
  if (dtype === 'BF16') {
    const bits = new Uint32Array(out.buffer);
    for (let i = 0; i < count; i++) bits[i] = halves[i] << 16;
  } else for (let i = 0; i < count; i++) out[i] = halfToFloat(halves[i]);
  return out;
}

function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * 2 ** -14 * (frac / 1024);
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * 2 ** (exp - 15) * (1 + frac / 1024);
}

/** A safetensors file of float32 tensors, in the order given, with `metadata` (HF loaders want {format: 'pt'}). */
export function writeSafetensors(tensors: [string, Tensor][], metadata: Record<string, string>): ArrayBuffer {
  const header: Record<string, unknown> = { __metadata__: metadata };
  let offset = 0;
  for (const [name, t] of tensors) {
    header[name] = { dtype: 'F32', shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((8 + new TextEncoder().encode(json).length) % 8)) % 8); // the data starts 8-byte aligned
  const head = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + head.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(head.length), true);
  out.set(head, 8);
  let at = 8 + head.length;
  for (const [, t] of tensors) {
    out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), at);
    at += t.data.byteLength;
  }
  return out.buffer;
}
