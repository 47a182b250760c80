// Small statistics on measured times, shared by the training loop, the ranks, the CLI, the page and the
// benchmarks.

/** Median of values after skipping the first `skip` (warm-up: kernel compilation, allocation); NaN if none. */
export function median(values: number[], skip = 0): number {
  const v = values.slice(skip).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const mid = v.length >> 1;
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}
