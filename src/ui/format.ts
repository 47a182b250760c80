// Number formatting for the page: short, readable at a distance, no DOM.

export function count(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

/** 1234 -> "1.2 K", 812345 -> "0.81 M", 124439808 -> "124 M". */
export function compact(n: number): string {
  if (n >= 1e9) return `${sig(n / 1e9)} B`;
  if (n >= 1e6) return `${sig(n / 1e6)} M`;
  if (n >= 1e4) return `${sig(n / 1e3)} K`;
  return count(n);
}

function sig(x: number): string {
  return x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2);
}

export function bytes(n: number): string {
  if (n >= 2 ** 30) return `${(n / 2 ** 30).toFixed(1)} GB`;
  if (n >= 2 ** 20) return `${(n / 2 ** 20).toFixed(1)} MB`;
  if (n >= 2 ** 10) return `${(n / 2 ** 10).toFixed(0)} KB`;
  return `${n} B`;
}

/** "45s", "3m 05s", "2h 10m". */
export function duration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '–';
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h ${String(m % 60).padStart(2, '0')}m`;
}

export function loss(x: number | null | undefined): string {
  if (x == null || !Number.isFinite(x)) return '–';
  return Math.abs(x) < 1000 ? x.toFixed(3) : x.toExponential(2).replace('e+', 'e');
}

/** Axis ticks: two decimals for ordinary losses, exponent notation for a run that blew up. */
export function tick(x: number): string {
  return Math.abs(x) < 1000 ? x.toFixed(2) : x.toExponential(1).replace('e+', 'e');
}

/** Learning rates and other small numbers: 0.001 -> "1.00e-3". */
export function small(x: number): string {
  if (!Number.isFinite(x)) return '–';
  if (x === 0) return '0';
  return Math.abs(x) >= 0.01 && Math.abs(x) < 1000 ? x.toPrecision(3) : x.toExponential(2).replace('e+', 'e');
}

export function date(ms: number): string {
  return new Date(ms).toLocaleString(undefined, { day: 'numeric', month: 'short', hour: '2-digit', minute: '2-digit' });
}
