;; Fused kernels of the GPT-2 step on the tfjs wasm backend, in WebAssembly SIMD (four float32 lanes).
;; Each replaces several tfjs kernels (each its own pass over memory) with one pass: LayerNorm forward and
;; backward (with the residual's add), GELU forward (with the bias) and backward (with the bias gradient),
;; bias and residual adds, column sums (bias gradients), and causal attention forward and backward read
;; straight from the fused q|k|v matrix, so no head is split, transposed or merged.
;; The module imports the wasm backend's own memory (src/model/kernels/fused.ts), so its pointers are the
;; tensors' byte offsets in that heap; n, N, K, C count float32 elements. Widths (K, C, hs) are multiples
;; of four (the caller checks). Compiled by scripts/build-wasm.ts into fused-wasm.ts, once with plain
;; multiply-adds and once with relaxed-SIMD fused multiply-adds: `(madd a b c)` below is a * b + c.
(module
  (import "env" "memory" (memory {limits}))

  ;; ---- helpers ---------------------------------------------------------------------------------------
  (func $hsum (param $v v128) (result f32)
    (f32.add
      (f32.add (f32x4.extract_lane 0 (local.get $v)) (f32x4.extract_lane 1 (local.get $v)))
      (f32.add (f32x4.extract_lane 2 (local.get $v)) (f32x4.extract_lane 3 (local.get $v)))))

  ;; e^x per lane (Cephes expf: x = n ln2 + r, |r| <= ln2/2, a degree-6 polynomial; ~1 ulp), x clamped
  ;; to [-87.3, 88.3] so 2^n stays a normal float. n = round(x log2 e) by adding 1.5 * 2^23 (its low bits
  ;; are then n, which makes 2^n with integer adds), and pmin/pmax: one instruction each, where min/max
  ;; with their NaN rules are several.
  ;; the constants of exp4 and sigmoid4, as globals: V8 builds a v128.const anew at each use (several
  ;; instructions), a global is one load
  (global $k0 v128 (v128.const f32x4 88.3 88.3 88.3 88.3))
  (global $k1 v128 (v128.const f32x4 -87.3 -87.3 -87.3 -87.3))
  (global $k2 v128 (v128.const f32x4 1.44269504088896341 1.44269504088896341 1.44269504088896341 1.44269504088896341))
  (global $k3 v128 (v128.const f32x4 12582912 12582912 12582912 12582912))
  (global $k4 v128 (v128.const f32x4 -0.693359375 -0.693359375 -0.693359375 -0.693359375))
  (global $k5 v128 (v128.const f32x4 2.12194440e-4 2.12194440e-4 2.12194440e-4 2.12194440e-4))
  (global $k6 v128 (v128.const f32x4 1.9875691500e-4 1.9875691500e-4 1.9875691500e-4 1.9875691500e-4))
  (global $k7 v128 (v128.const f32x4 1.3981999507e-3 1.3981999507e-3 1.3981999507e-3 1.3981999507e-3))
  (global $k8 v128 (v128.const f32x4 8.3334519073e-3 8.3334519073e-3 8.3334519073e-3 8.3334519073e-3))
  (global $k9 v128 (v128.const f32x4 4.1665795894e-2 4.1665795894e-2 4.1665795894e-2 4.1665795894e-2))
  (global $k10 v128 (v128.const f32x4 1.6666665459e-1 1.6666665459e-1 1.6666665459e-1 1.6666665459e-1))
  (global $k11 v128 (v128.const f32x4 5.0000001201e-1 5.0000001201e-1 5.0000001201e-1 5.0000001201e-1))
  (global $k12 v128 (v128.const f32x4 1 1 1 1))
  (global $kbias v128 (v128.const i32x4 0x4B3FFF81 0x4B3FFF81 0x4B3FFF81 0x4B3FFF81))

  (func $exp4 (param $x v128) (result v128)
    (local $v v128) (local $n v128) (local $r v128) (local $p v128)
    (local.set $x (f32x4.pmax (f32x4.pmin (local.get $x) (global.get $k0))
                              (global.get $k1)))
    (local.set $v (madd (local.get $x) (global.get $k2)
                        (global.get $k3)))
    (local.set $n (f32x4.sub (local.get $v) (global.get $k3)))
    (local.set $r (madd (local.get $n) (global.get $k4) (local.get $x)))
    (local.set $r (madd (local.get $n) (global.get $k5) (local.get $r)))
    (local.set $p (global.get $k6))
    (local.set $p (madd (local.get $p) (local.get $r) (global.get $k7)))
    (local.set $p (madd (local.get $p) (local.get $r) (global.get $k8)))
    (local.set $p (madd (local.get $p) (local.get $r) (global.get $k9)))
    (local.set $p (madd (local.get $p) (local.get $r) (global.get $k10)))
    (local.set $p (madd (local.get $p) (local.get $r) (global.get $k11)))
    (local.set $p (f32x4.add
      (madd (f32x4.mul (local.get $p) (local.get $r)) (local.get $r) (local.get $r))
      (global.get $k12)))
    ;; 2^n: the bits of v are those of 1.5 * 2^23 (0x4B400000) plus n
    (f32x4.mul (local.get $p)
      (i32x4.shl (i32x4.sub (local.get $v) (global.get $kbias)) (i32.const 23))))

  ;; 1 / (1 + e^-x)
  (func $sigmoid4 (param $x v128) (result v128)
    (f32x4.div (global.get $k12)
      (f32x4.add (global.get $k12) (call $exp4 (f32x4.neg (local.get $x))))))

  (func $zero (param $p i32) (param $n i32)
    (memory.fill (local.get $p) (i32.const 0) (i32.shl (local.get $n) (i32.const 2))))

  ;; ---- elementwise -------------------------------------------------------------------------------------
  ;; out[n, k] = x[n, k] + bias[k]   (x: N x K)
  (func (export "bias_add") (param $x i32) (param $bias i32) (param $out i32) (param $N i32) (param $K i32)
    (local $n i32) (local $k i32) (local $kb i32)
    (local.set $kb (i32.shl (local.get $K) (i32.const 2)))
    (block $done (loop $rows
      (br_if $done (i32.ge_u (local.get $n) (local.get $N)))
      (local.set $k (i32.const 0))
      (block $rdone (loop $cols
        (br_if $rdone (i32.ge_u (local.get $k) (local.get $kb)))
        (v128.store (i32.add (local.get $out) (local.get $k))
          (f32x4.add (v128.load (i32.add (local.get $x) (local.get $k))) (v128.load (i32.add (local.get $bias) (local.get $k)))))
        (local.set $k (i32.add (local.get $k) (i32.const 16)))
        (br $cols)))
      (local.set $x (i32.add (local.get $x) (local.get $kb)))
      (local.set $out (i32.add (local.get $out) (local.get $kb)))
      (local.set $n (i32.add (local.get $n) (i32.const 1)))
      (br $rows))))

  ;; out = x + (partial + bias[k])   (the residual after a half's row-parallel linear)
  (func (export "residual") (param $x i32) (param $partial i32) (param $bias i32) (param $out i32) (param $N i32) (param $K i32)
    (local $n i32) (local $k i32) (local $kb i32)
    (local.set $kb (i32.shl (local.get $K) (i32.const 2)))
    (block $done (loop $rows
      (br_if $done (i32.ge_u (local.get $n) (local.get $N)))
      (local.set $k (i32.const 0))
      (block $rdone (loop $cols
        (br_if $rdone (i32.ge_u (local.get $k) (local.get $kb)))
        (v128.store (i32.add (local.get $out) (local.get $k))
          (f32x4.add (v128.load (i32.add (local.get $x) (local.get $k)))
            (f32x4.add (v128.load (i32.add (local.get $partial) (local.get $k))) (v128.load (i32.add (local.get $bias) (local.get $k))))))
        (local.set $k (i32.add (local.get $k) (i32.const 16)))
        (br $cols)))
      (local.set $x (i32.add (local.get $x) (local.get $kb)))
      (local.set $partial (i32.add (local.get $partial) (local.get $kb)))
      (local.set $out (i32.add (local.get $out) (local.get $kb)))
      (local.set $n (i32.add (local.get $n) (i32.const 1)))
      (br $rows))))

  ;; out[k] = sum_n x[n, k]   (a bias gradient)
  (func (export "colsum") (param $x i32) (param $out i32) (param $N i32) (param $K i32)
    (local $n i32) (local $k i32) (local $kb i32)
    (local.set $kb (i32.shl (local.get $K) (i32.const 2)))
    (call $zero (local.get $out) (local.get $K))
    (block $done (loop $rows
      (br_if $done (i32.ge_u (local.get $n) (local.get $N)))
      (local.set $k (i32.const 0))
      (block $rdone (loop $cols
        (br_if $rdone (i32.ge_u (local.get $k) (local.get $kb)))
        (v128.store (i32.add (local.get $out) (local.get $k))
          (f32x4.add (v128.load (i32.add (local.get $out) (local.get $k))) (v128.load (i32.add (local.get $x) (local.get $k)))))
        (local.set $k (i32.add (local.get $k) (i32.const 16)))
        (br $cols)))
      (local.set $x (i32.add (local.get $x) (local.get $kb)))
      (local.set $n (i32.add (local.get $n) (i32.const 1)))
      (br $rows))))

  ;; GELU (tanh form, tanh(u) = 2 sigmoid(2u) - 1): h = pre + bias; g = h * sigmoid(2u), 2u = h (2S + 2SA h^2)
  (func (export "gelu_fwd") (param $pre i32) (param $bias i32) (param $h i32) (param $g i32) (param $N i32) (param $K i32)
    (param $c1 f32) (param $c3 f32)  ;; 2S, 2SA
    (local $n i32) (local $k i32) (local $kb i32) (local $x v128) (local $v1 v128) (local $v3 v128)
    (local.set $kb (i32.shl (local.get $K) (i32.const 2)))
    (local.set $v1 (f32x4.splat (local.get $c1)))
    (local.set $v3 (f32x4.splat (local.get $c3)))
    (block $done (loop $rows
      (br_if $done (i32.ge_u (local.get $n) (local.get $N)))
      (local.set $k (i32.const 0))
      (block $rdone (loop $cols
        (br_if $rdone (i32.ge_u (local.get $k) (local.get $kb)))
        (local.set $x (f32x4.add (v128.load (i32.add (local.get $pre) (local.get $k))) (v128.load (i32.add (local.get $bias) (local.get $k)))))
        (v128.store (i32.add (local.get $h) (local.get $k)) (local.get $x))
        (v128.store (i32.add (local.get $g) (local.get $k))
          (f32x4.mul (local.get $x)
            (call $sigmoid4 (f32x4.mul (local.get $x)
              (f32x4.add (f32x4.mul (f32x4.mul (local.get $x) (local.get $x)) (local.get $v3)) (local.get $v1))))))
        (local.set $k (i32.add (local.get $k) (i32.const 16)))
        (br $cols)))
      (local.set $pre (i32.add (local.get $pre) (local.get $kb)))
      (local.set $h (i32.add (local.get $h) (local.get $kb)))
      (local.set $g (i32.add (local.get $g) (local.get $kb)))
      (local.set $n (i32.add (local.get $n) (i32.const 1)))
      (br $rows))))

  ;; dh = dg * (s + h s (1 - s) 2u'), s = sigmoid(2u), 2u' = 2S + 6SA h^2; db[k] = sum_n dh[n, k]
  (func (export "gelu_bwd") (param $dg i32) (param $h i32) (param $dh i32) (param $db i32) (param $N i32) (param $K i32)
    (param $c1 f32) (param $c3 f32)  ;; 2S, 2SA (2u' = c1 + 3 c3 h^2)
    (local $n i32) (local $k i32) (local $kb i32) (local $x v128) (local $x2 v128) (local $s v128) (local $d v128)
    (local $v1 v128) (local $v3 v128) (local $v33 v128)
    (local.set $kb (i32.shl (local.get $K) (i32.const 2)))
    (local.set $v1 (f32x4.splat (local.get $c1)))
    (local.set $v3 (f32x4.splat (local.get $c3)))
    (local.set $v33 (f32x4.splat (f32.mul (local.get $c3) (f32.const 3))))
    (call $zero (local.get $db) (local.get $K))
    (block $done (loop $rows
      (br_if $done (i32.ge_u (local.get $n) (local.get $N)))
      (local.set $k (i32.const 0))
      (block $rdone (loop $cols
        (br_if $rdone (i32.ge_u (local.get $k) (local.get $kb)))
        (local.set $x (v128.load (i32.add (local.get $h) (local.get $k))))
        (local.set $x2 (f32x4.mul (local.get $x) (local.get $x)))
        (local.set $s (call $sigmoid4 (f32x4.mul (local.get $x) (f32x4.add (f32x4.mul (local.get $x2) (local.get $v3)) (local.get $v1)))))
        (local.set $d (f32x4.mul (v128.load (i32.add (local.get $dg) (local.get $k)))
          (f32x4.add (local.get $s)
            (f32x4.mul (f32x4.mul (f32x4.mul (local.get $x) (local.get $s)) (f32x4.sub (v128.const f32x4 1 1 1 1) (local.get $s)))
              (f32x4.add (f32x4.mul (local.get $x2) (local.get $v33)) (local.get $v1))))))
        (v128.store (i32.add (local.get $dh) (local.get $k)) (local.get $d))
        (v128.store (i32.add (local.get $db) (local.get $k)) (f32x4.add (v128.load (i32.add (local.get $db) (local.get $k))) (local.get $d)))
        (local.set $k (i32.add (local.get $k) (i32.const 16)))
        (br $cols)))
      (local.set $dg (i32.add (local.get $dg) (local.get $kb)))
      (local.set $h (i32.add (local.get $h) (local.get $kb)))
      (local.set $dh (i32.add (local.get $dh) (local.get $kb)))
      (local.set $n (i32.add (local.get $n) (i32.const 1)))
      (br $rows))))

  ;; ---- LayerNorm ---------------------------------------------------------------------------------------
  ;; per row: mean, var = mean((x - mean)^2), rstd = 1/sqrt(var + eps), xhat = (x - mean) rstd, out = xhat w + b
  (func (export "ln_fwd") (param $x i32) (param $w i32) (param $b i32) (param $out i32) (param $xhat i32) (param $rstd i32)
    (param $N i32) (param $C i32) (param $eps f32)
    (local $n i32) (local $k i32) (local $cb i32) (local $acc v128) (local $d v128) (local $m v128) (local $r v128)
    (local $mean f32) (local $rs f32) (local $invC f32)
    (local.set $cb (i32.shl (local.get $C) (i32.const 2)))
    (local.set $invC (f32.div (f32.const 1) (f32.convert_i32_u (local.get $C))))
    (block $done (loop $rows
      (br_if $done (i32.ge_u (local.get $n) (local.get $N)))
      (local.set $acc (v128.const f32x4 0 0 0 0))
      (local.set $k (i32.const 0))
      (block $d1 (loop $l1
        (br_if $d1 (i32.ge_u (local.get $k) (local.get $cb)))
        (local.set $acc (f32x4.add (local.get $acc) (v128.load (i32.add (local.get $x) (local.get $k)))))
        (local.set $k (i32.add (local.get $k) (i32.const 16)))
        (br $l1)))
      (local.set $mean (f32.mul (call $hsum (local.get $acc)) (local.get $invC)))
      (local.set $m (f32x4.splat (local.get $mean)))
      (local.set $acc (v128.const f32x4 0 0 0 0))
      (local.set $k (i32.const 0))
      (block $d2 (loop $l2
        (br_if $d2 (i32.ge_u (local.get $k) (local.get $cb)))
        (local.set $d (f32x4.sub (v128.load (i32.add (local.get $x) (local.get $k))) (local.get $m)))
        (local.set $acc (madd (local.get $d) (local.get $d) (local.get $acc)))
        (local.set $k (i32.add (local.get $k) (i32.const 16)))
        (br $l2)))
      (local.set $rs (f32.div (f32.const 1) (f32.sqrt (f32.add (f32.mul (call $hsum (local.get $acc)) (local.get $invC)) (local.get $eps)))))
      (f32.store (local.get $rstd) (local.get $rs))
      (local.set $r (f32x4.splat (local.get $rs)))
      (local.set $k (i32.const 0))
      (block $d3 (loop $l3
        (br_if $d3 (i32.ge_u (local.get $k) (local.get $cb)))
        (local.set $d (f32x4.mul (f32x4.sub (v128.load (i32.add (local.get $x) (local.get $k))) (local.get $m)) (local.get $r)))
        (v128.store (i32.add (local.get $xhat) (local.get $k)) (local.get $d))
        (v128.store (i32.add (local.get $out) (local.get $k))
          (f32x4.add (f32x4.mul (local.get $d) (v128.load (i32.add (local.get $w) (local.get $k)))) (v128.load (i32.add (local.get $b) (local.get $k)))))
        (local.set $k (i32.add (local.get $k) (i32.const 16)))
        (br $l3)))
      (local.set $x (i32.add (local.get $x) (local.get $cb)))
      (local.set $xhat (i32.add (local.get $xhat) (local.get $cb)))
      (local.set $out (i32.add (local.get $out) (local.get $cb)))
      (local.set $rstd (i32.add (local.get $rstd) (i32.const 4)))
      (local.set $n (i32.add (local.get $n) (i32.const 1)))
      (br $rows))))

  ;; dn = dout w; dx = (dn - mean(dn) - xhat mean(dn xhat)) rstd + dres (dres 0: none);
  ;; dw[k] = sum_n dout xhat, db[k] = sum_n dout
  (func (export "ln_bwd") (param $dout i32) (param $xhat i32) (param $rstd i32) (param $w i32) (param $dres i32)
    (param $dx i32) (param $dw i32) (param $db i32) (param $N i32) (param $C i32)
    (local $n i32) (local $k i32) (local $cb i32) (local $a1 v128) (local $a2 v128) (local $g v128) (local $xh v128) (local $dn v128)
    (local $m1 v128) (local $m2 v128) (local $r v128) (local $v v128) (local $invC f32)
    (local.set $cb (i32.shl (local.get $C) (i32.const 2)))
    (local.set $invC (f32.div (f32.const 1) (f32.convert_i32_u (local.get $C))))
    (call $zero (local.get $dw) (local.get $C))
    (call $zero (local.get $db) (local.get $C))
    (block $done (loop $rows
      (br_if $done (i32.ge_u (local.get $n) (local.get $N)))
      (local.set $a1 (v128.const f32x4 0 0 0 0))
      (local.set $a2 (v128.const f32x4 0 0 0 0))
      (local.set $k (i32.const 0))
      (block $d1 (loop $l1
        (br_if $d1 (i32.ge_u (local.get $k) (local.get $cb)))
        (local.set $g (v128.load (i32.add (local.get $dout) (local.get $k))))
        (local.set $xh (v128.load (i32.add (local.get $xhat) (local.get $k))))
        (local.set $dn (f32x4.mul (local.get $g) (v128.load (i32.add (local.get $w) (local.get $k)))))
        (local.set $a1 (f32x4.add (local.get $a1) (local.get $dn)))
        (local.set $a2 (madd (local.get $dn) (local.get $xh) (local.get $a2)))
        (v128.store (i32.add (local.get $dw) (local.get $k)) (madd (local.get $g) (local.get $xh) (v128.load (i32.add (local.get $dw) (local.get $k)))))
        (v128.store (i32.add (local.get $db) (local.get $k)) (f32x4.add (v128.load (i32.add (local.get $db) (local.get $k))) (local.get $g)))
        (local.set $k (i32.add (local.get $k) (i32.const 16)))
        (br $l1)))
      (local.set $m1 (f32x4.splat (f32.mul (call $hsum (local.get $a1)) (local.get $invC))))
      (local.set $m2 (f32x4.splat (f32.mul (call $hsum (local.get $a2)) (local.get $invC))))
      (local.set $r (f32x4.splat (f32.load (local.get $rstd))))
      (local.set $k (i32.const 0))
      (block $d2 (loop $l2
        (br_if $d2 (i32.ge_u (local.get $k) (local.get $cb)))
        (local.set $dn (f32x4.mul (v128.load (i32.add (local.get $dout) (local.get $k))) (v128.load (i32.add (local.get $w) (local.get $k)))))
        (local.set $v (f32x4.mul
          (f32x4.sub (f32x4.sub (local.get $dn) (local.get $m1)) (f32x4.mul (v128.load (i32.add (local.get $xhat) (local.get $k))) (local.get $m2)))
          (local.get $r)))
        (if (local.get $dres)
          (then (local.set $v (f32x4.add (v128.load (i32.add (local.get $dres) (local.get $k))) (local.get $v)))))
        (v128.store (i32.add (local.get $dx) (local.get $k)) (local.get $v))
        (local.set $k (i32.add (local.get $k) (i32.const 16)))
        (br $l2)))
      (local.set $dout (i32.add (local.get $dout) (local.get $cb)))
      (local.set $xhat (i32.add (local.get $xhat) (local.get $cb)))
      (local.set $dx (i32.add (local.get $dx) (local.get $cb)))
      (if (local.get $dres) (then (local.set $dres (i32.add (local.get $dres) (local.get $cb)))))
      (local.set $rstd (i32.add (local.get $rstd) (i32.const 4)))
      (local.set $n (i32.add (local.get $n) (i32.const 1)))
      (br $rows))))

  ;; ---- causal attention --------------------------------------------------------------------------------
  ;; qkv (B*T, 3*C) with C = nh*hs: q, k, v of head h at columns h*hs, C + h*hs, 2C + h*hs.
  ;; att (B*nh, T, T) = softmax(q k^T * scale, causal), zero above the diagonal; y (B*T, C) = att v, heads merged.
  (func (export "attn_fwd") (param $qkv i32) (param $y i32) (param $att i32) (param $B i32) (param $T i32) (param $nh i32) (param $hs i32) (param $scale f32)
    (local $b i32) (local $h i32) (local $t i32) (local $u i32) (local $d i32)
    (local $rs i32) (local $ys i32) (local $hsb i32) (local $Cb i32)
    (local $qp i32) (local $kb i32) (local $vb i32) (local $ap i32) (local $yp i32) (local $kp i32) (local $n1 i32) (local $n4 i32)
    (local $acc v128) (local $mx f32) (local $s f32) (local $sum v128) (local $ssum f32) (local $e v128) (local $inv v128)
    (local.set $hsb (i32.shl (local.get $hs) (i32.const 2)))
    (local.set $Cb (i32.mul (local.get $nh) (local.get $hsb)))
    (local.set $ys (local.get $Cb))
    (local.set $rs (i32.mul (local.get $Cb) (i32.const 3)))
    (local.set $ap (local.get $att))
    (block $bd (loop $bl
      (br_if $bd (i32.ge_u (local.get $b) (local.get $B)))
      (local.set $h (i32.const 0))
      (block $hd (loop $hl
        (br_if $hd (i32.ge_u (local.get $h) (local.get $nh)))
        ;; k and v rows of this (b, h): kb + u*rs, vb + u*rs
        (local.set $kb (i32.add (i32.add (local.get $qkv) (i32.mul (i32.mul (local.get $b) (local.get $T)) (local.get $rs)))
                                (i32.add (local.get $Cb) (i32.mul (local.get $h) (local.get $hsb)))))
        (local.set $vb (i32.add (local.get $kb) (local.get $Cb)))
        (local.set $t (i32.const 0))
        (block $td (loop $tl
          (br_if $td (i32.ge_u (local.get $t) (local.get $T)))
          (local.set $qp (i32.sub (i32.add (local.get $kb) (i32.mul (local.get $t) (local.get $rs))) (local.get $Cb)))
          (local.set $n1 (i32.add (local.get $t) (i32.const 1)))
          ;; scores s_u = (q . k_u) scale for u <= t, and their max
          (local.set $mx (f32.const -inf))
          (local.set $u (i32.const 0))
          (local.set $kp (local.get $kb))
          (block $ud (loop $ul
            (br_if $ud (i32.ge_u (local.get $u) (local.get $n1)))
            (local.set $acc (v128.const f32x4 0 0 0 0))
            (local.set $d (i32.const 0))
            (block $dd (loop $dl
              (br_if $dd (i32.ge_u (local.get $d) (local.get $hsb)))
              (local.set $acc (madd (v128.load (i32.add (local.get $qp) (local.get $d))) (v128.load (i32.add (local.get $kp) (local.get $d))) (local.get $acc)))
              (local.set $d (i32.add (local.get $d) (i32.const 16)))
              (br $dl)))
            (local.set $s (f32.mul (call $hsum (local.get $acc)) (local.get $scale)))
            (f32.store (i32.add (local.get $ap) (i32.shl (local.get $u) (i32.const 2))) (local.get $s))
            (local.set $mx (f32.max (local.get $mx) (local.get $s)))
            (local.set $kp (i32.add (local.get $kp) (local.get $rs)))
            (local.set $u (i32.add (local.get $u) (i32.const 1)))
            (br $ul)))
          ;; e_u = exp(s_u - max), four at a time, then the tail one at a time
          (local.set $n4 (i32.and (local.get $n1) (i32.const -4)))
          (local.set $sum (v128.const f32x4 0 0 0 0))
          (local.set $u (i32.const 0))
          (block $ed (loop $el
            (br_if $ed (i32.ge_u (local.get $u) (local.get $n4)))
            (local.set $e (call $exp4 (f32x4.sub (v128.load (i32.add (local.get $ap) (i32.shl (local.get $u) (i32.const 2)))) (f32x4.splat (local.get $mx)))))
            (v128.store (i32.add (local.get $ap) (i32.shl (local.get $u) (i32.const 2))) (local.get $e))
            (local.set $sum (f32x4.add (local.get $sum) (local.get $e)))
            (local.set $u (i32.add (local.get $u) (i32.const 4)))
            (br $el)))
          (local.set $ssum (call $hsum (local.get $sum)))
          (block $etd (loop $etl
            (br_if $etd (i32.ge_u (local.get $u) (local.get $n1)))
            (local.set $s (f32x4.extract_lane 0 (call $exp4 (f32x4.splat (f32.sub (f32.load (i32.add (local.get $ap) (i32.shl (local.get $u) (i32.const 2)))) (local.get $mx))))))
            (f32.store (i32.add (local.get $ap) (i32.shl (local.get $u) (i32.const 2))) (local.get $s))
            (local.set $ssum (f32.add (local.get $ssum) (local.get $s)))
            (local.set $u (i32.add (local.get $u) (i32.const 1)))
            (br $etl)))
          ;; normalise; zeros above the diagonal
          (local.set $s (f32.div (f32.const 1) (local.get $ssum)))
          (local.set $u (i32.const 0))
          (block $nd (loop $nl
            (br_if $nd (i32.ge_u (local.get $u) (local.get $n1)))
            (f32.store (i32.add (local.get $ap) (i32.shl (local.get $u) (i32.const 2)))
              (f32.mul (f32.load (i32.add (local.get $ap) (i32.shl (local.get $u) (i32.const 2)))) (local.get $s)))
            (local.set $u (i32.add (local.get $u) (i32.const 1)))
            (br $nl)))
          (call $zero (i32.add (local.get $ap) (i32.shl (local.get $n1) (i32.const 2))) (i32.sub (local.get $T) (local.get $n1)))
          ;; y_t = sum_u att_u v_u, one four-lane slice of the head at a time
          (local.set $yp (i32.add (i32.add (local.get $y) (i32.mul (i32.add (i32.mul (local.get $b) (local.get $T)) (local.get $t)) (local.get $ys)))
                                  (i32.mul (local.get $h) (local.get $hsb))))
          (local.set $d (i32.const 0))
          (block $yd (loop $yl
            (br_if $yd (i32.ge_u (local.get $d) (local.get $hsb)))
            (local.set $acc (v128.const f32x4 0 0 0 0))
            (local.set $kp (i32.add (local.get $vb) (local.get $d)))
            (local.set $u (i32.const 0))
            (block $yud (loop $yul
              (br_if $yud (i32.ge_u (local.get $u) (local.get $n1)))
              (local.set $acc (madd (f32x4.splat (f32.load (i32.add (local.get $ap) (i32.shl (local.get $u) (i32.const 2)))))
                                    (v128.load (local.get $kp)) (local.get $acc)))
              (local.set $kp (i32.add (local.get $kp) (local.get $rs)))
              (local.set $u (i32.add (local.get $u) (i32.const 1)))
              (br $yul)))
            (v128.store (i32.add (local.get $yp) (local.get $d)) (local.get $acc))
            (local.set $d (i32.add (local.get $d) (i32.const 16)))
            (br $yl)))
          (local.set $ap (i32.add (local.get $ap) (i32.shl (local.get $T) (i32.const 2))))
          (local.set $t (i32.add (local.get $t) (i32.const 1)))
          (br $tl)))
        (local.set $h (i32.add (local.get $h) (i32.const 1)))
        (br $hl)))
      (local.set $b (i32.add (local.get $b) (i32.const 1)))
      (br $bl))))

  ;; Backward of attn_fwd: dy (B*T, C) -> dqkv (B*T, 3C). Per row t: datt_u = dy_t . v_u, dv_u += att_u dy_t,
  ;; ds_u = att_u (datt_u - sum_u' att_u' datt_u') scale, dq_t += ds_u k_u, dk_u += ds_u q_t.
  ;; scratch: T floats.
  (func (export "attn_bwd") (param $qkv i32) (param $att i32) (param $dy i32) (param $dqkv i32) (param $scratch i32)
    (param $B i32) (param $T i32) (param $nh i32) (param $hs i32) (param $scale f32)
    (local $b i32) (local $h i32) (local $t i32) (local $u i32) (local $d i32)
    (local $rs i32) (local $hsb i32) (local $Cb i32) (local $ho i32) (local $n1 i32)
    (local $qp i32) (local $kb i32) (local $ap i32) (local $dyp i32) (local $dqp i32) (local $dkb i32) (local $kp i32) (local $dkp i32)
    (local $acc v128) (local $g v128) (local $av v128) (local $a f32) (local $da f32) (local $dsum f32) (local $ds v128)
    (local.set $hsb (i32.shl (local.get $hs) (i32.const 2)))
    (local.set $Cb (i32.mul (local.get $nh) (local.get $hsb)))
    (local.set $rs (i32.mul (local.get $Cb) (i32.const 3)))
    (call $zero (local.get $dqkv) (i32.mul (i32.mul (local.get $B) (local.get $T)) (i32.mul (i32.mul (local.get $nh) (local.get $hs)) (i32.const 3))))
    (local.set $ap (local.get $att))
    (block $bd (loop $bl
      (br_if $bd (i32.ge_u (local.get $b) (local.get $B)))
      (local.set $h (i32.const 0))
      (block $hd (loop $hl
        (br_if $hd (i32.ge_u (local.get $h) (local.get $nh)))
        (local.set $ho (i32.add (i32.mul (i32.mul (local.get $b) (local.get $T)) (local.get $rs)) (i32.add (local.get $Cb) (i32.mul (local.get $h) (local.get $hsb)))))
        (local.set $kb (i32.add (local.get $qkv) (local.get $ho)))   ;; k_u = kb + u*rs, v_u = k_u + Cb
        (local.set $dkb (i32.add (local.get $dqkv) (local.get $ho))) ;; dk_u, dv_u likewise
        (local.set $t (i32.const 0))
        (block $td (loop $tl
          (br_if $td (i32.ge_u (local.get $t) (local.get $T)))
          (local.set $n1 (i32.add (local.get $t) (i32.const 1)))
          (local.set $qp (i32.sub (i32.add (local.get $kb) (i32.mul (local.get $t) (local.get $rs))) (local.get $Cb)))
          (local.set $dqp (i32.sub (i32.add (local.get $dkb) (i32.mul (local.get $t) (local.get $rs))) (local.get $Cb)))
          (local.set $dyp (i32.add (i32.add (local.get $dy) (i32.mul (i32.add (i32.mul (local.get $b) (local.get $T)) (local.get $t)) (local.get $Cb)))
                                   (i32.mul (local.get $h) (local.get $hsb))))
          ;; datt_u and dv_u
          (local.set $dsum (f32.const 0))
          (local.set $u (i32.const 0))
          (local.set $kp (i32.add (local.get $kb) (local.get $Cb)))   ;; v_u
          (local.set $dkp (i32.add (local.get $dkb) (local.get $Cb))) ;; dv_u
          (block $ud (loop $ul
            (br_if $ud (i32.ge_u (local.get $u) (local.get $n1)))
            (local.set $a (f32.load (i32.add (local.get $ap) (i32.shl (local.get $u) (i32.const 2)))))
            (local.set $av (f32x4.splat (local.get $a)))
            (local.set $acc (v128.const f32x4 0 0 0 0))
            (local.set $d (i32.const 0))
            (block $dd (loop $dl
              (br_if $dd (i32.ge_u (local.get $d) (local.get $hsb)))
              (local.set $g (v128.load (i32.add (local.get $dyp) (local.get $d))))
              (local.set $acc (madd (local.get $g) (v128.load (i32.add (local.get $kp) (local.get $d))) (local.get $acc)))
              (v128.store (i32.add (local.get $dkp) (local.get $d))
                (madd (local.get $av) (local.get $g) (v128.load (i32.add (local.get $dkp) (local.get $d)))))
              (local.set $d (i32.add (local.get $d) (i32.const 16)))
              (br $dl)))
            (local.set $da (call $hsum (local.get $acc)))
            (f32.store (i32.add (local.get $scratch) (i32.shl (local.get $u) (i32.const 2))) (local.get $da))
            (local.set $dsum (f32.add (local.get $dsum) (f32.mul (local.get $da) (local.get $a))))
            (local.set $kp (i32.add (local.get $kp) (local.get $rs)))
            (local.set $dkp (i32.add (local.get $dkp) (local.get $rs)))
            (local.set $u (i32.add (local.get $u) (i32.const 1)))
            (br $ul)))
          ;; ds_u, dq_t, dk_u
          (local.set $u (i32.const 0))
          (local.set $kp (local.get $kb))
          (local.set $dkp (local.get $dkb))
          (block $sd (loop $sl
            (br_if $sd (i32.ge_u (local.get $u) (local.get $n1)))
            (local.set $ds (f32x4.splat
              (f32.mul (f32.mul (f32.load (i32.add (local.get $ap) (i32.shl (local.get $u) (i32.const 2))))
                                (f32.sub (f32.load (i32.add (local.get $scratch) (i32.shl (local.get $u) (i32.const 2)))) (local.get $dsum)))
                       (local.get $scale))))
            (local.set $d (i32.const 0))
            (block $dd2 (loop $dl2
              (br_if $dd2 (i32.ge_u (local.get $d) (local.get $hsb)))
              (v128.store (i32.add (local.get $dqp) (local.get $d))
                (madd (local.get $ds) (v128.load (i32.add (local.get $kp) (local.get $d))) (v128.load (i32.add (local.get $dqp) (local.get $d)))))
              (v128.store (i32.add (local.get $dkp) (local.get $d))
                (madd (local.get $ds) (v128.load (i32.add (local.get $qp) (local.get $d))) (v128.load (i32.add (local.get $dkp) (local.get $d)))))
              (local.set $d (i32.add (local.get $d) (i32.const 16)))
              (br $dl2)))
            (local.set $kp (i32.add (local.get $kp) (local.get $rs)))
            (local.set $dkp (i32.add (local.get $dkp) (local.get $rs)))
            (local.set $u (i32.add (local.get $u) (i32.const 1)))
            (br $sl)))
          (local.set $ap (i32.add (local.get $ap) (i32.shl (local.get $T) (i32.const 2))))
          (local.set $t (i32.add (local.get $t) (i32.const 1)))
          (br $tl)))
        (local.set $h (i32.add (local.get $h) (i32.const 1)))
        (br $hl)))
      (local.set $b (i32.add (local.get $b) (i32.const 1)))
      (br $bl))))

  ;; ---- layout --------------------------------------------------------------------------------------------
  ;; out (C, R) = x (R, C) transposed: 4 x 4 blocks through shuffles, then the odd rows and columns one by one.
  (func (export "transpose") (param $x i32) (param $out i32) (param $R i32) (param $C i32)
    (local $r i32) (local $c i32) (local $R4 i32) (local $C4 i32) (local $rb i32) (local $cb i32)
    (local $p i32) (local $q i32) (local $a v128) (local $b v128) (local $e v128) (local $f v128) (local $t0 v128) (local $t1 v128) (local $t2 v128) (local $t3 v128)
    (local.set $R4 (i32.and (local.get $R) (i32.const -4)))
    (local.set $C4 (i32.and (local.get $C) (i32.const -4)))
    (local.set $rb (i32.shl (local.get $R) (i32.const 2)))  ;; out's row stride, bytes
    (local.set $cb (i32.shl (local.get $C) (i32.const 2)))  ;; x's row stride, bytes
    (block $rd (loop $rl
      (br_if $rd (i32.ge_u (local.get $r) (local.get $R4)))
      (local.set $c (i32.const 0))
      (block $cd (loop $cl
        (br_if $cd (i32.ge_u (local.get $c) (local.get $C4)))
        (local.set $p (i32.add (local.get $x) (i32.shl (i32.add (i32.mul (local.get $r) (local.get $C)) (local.get $c)) (i32.const 2))))
        (local.set $a (v128.load (local.get $p)))
        (local.set $b (v128.load (i32.add (local.get $p) (local.get $cb))))
        (local.set $e (v128.load (i32.add (local.get $p) (i32.shl (local.get $cb) (i32.const 1)))))
        (local.set $f (v128.load (i32.add (local.get $p) (i32.mul (local.get $cb) (i32.const 3)))))
        (local.set $t0 (i8x16.shuffle 0 1 2 3 16 17 18 19 4 5 6 7 20 21 22 23 (local.get $a) (local.get $b)))
        (local.set $t1 (i8x16.shuffle 8 9 10 11 24 25 26 27 12 13 14 15 28 29 30 31 (local.get $a) (local.get $b)))
        (local.set $t2 (i8x16.shuffle 0 1 2 3 16 17 18 19 4 5 6 7 20 21 22 23 (local.get $e) (local.get $f)))
        (local.set $t3 (i8x16.shuffle 8 9 10 11 24 25 26 27 12 13 14 15 28 29 30 31 (local.get $e) (local.get $f)))
        (local.set $q (i32.add (local.get $out) (i32.shl (i32.add (i32.mul (local.get $c) (local.get $R)) (local.get $r)) (i32.const 2))))
        (v128.store (local.get $q) (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (local.get $t0) (local.get $t2)))
        (v128.store (i32.add (local.get $q) (local.get $rb)) (i8x16.shuffle 8 9 10 11 12 13 14 15 24 25 26 27 28 29 30 31 (local.get $t0) (local.get $t2)))
        (v128.store (i32.add (local.get $q) (i32.shl (local.get $rb) (i32.const 1))) (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (local.get $t1) (local.get $t3)))
        (v128.store (i32.add (local.get $q) (i32.mul (local.get $rb) (i32.const 3))) (i8x16.shuffle 8 9 10 11 12 13 14 15 24 25 26 27 28 29 30 31 (local.get $t1) (local.get $t3)))
        (local.set $c (i32.add (local.get $c) (i32.const 4)))
        (br $cl)))
      ;; columns C4..C of these four rows
      (block $td (loop $tl
        (br_if $td (i32.ge_u (local.get $c) (local.get $C)))
        (local.set $p (i32.add (local.get $x) (i32.shl (i32.add (i32.mul (local.get $r) (local.get $C)) (local.get $c)) (i32.const 2))))
        (local.set $q (i32.add (local.get $out) (i32.shl (i32.add (i32.mul (local.get $c) (local.get $R)) (local.get $r)) (i32.const 2))))
        (f32.store (local.get $q) (f32.load (local.get $p)))
        (f32.store offset=4 (local.get $q) (f32.load (i32.add (local.get $p) (local.get $cb))))
        (f32.store offset=8 (local.get $q) (f32.load (i32.add (local.get $p) (i32.shl (local.get $cb) (i32.const 1)))))
        (f32.store offset=12 (local.get $q) (f32.load (i32.add (local.get $p) (i32.mul (local.get $cb) (i32.const 3)))))
        (local.set $c (i32.add (local.get $c) (i32.const 1)))
        (br $tl)))
      (local.set $r (i32.add (local.get $r) (i32.const 4)))
      (br $rl)))
    ;; rows R4..R, every column
    (block $rd2 (loop $rl2
      (br_if $rd2 (i32.ge_u (local.get $r) (local.get $R)))
      (local.set $c (i32.const 0))
      (block $cd2 (loop $cl2
        (br_if $cd2 (i32.ge_u (local.get $c) (local.get $C)))
        (f32.store (i32.add (local.get $out) (i32.shl (i32.add (i32.mul (local.get $c) (local.get $R)) (local.get $r)) (i32.const 2)))
          (f32.load (i32.add (local.get $x) (i32.shl (i32.add (i32.mul (local.get $r) (local.get $C)) (local.get $c)) (i32.const 2)))))
        (local.set $c (i32.add (local.get $c) (i32.const 1)))
        (br $cl2)))
      (local.set $r (i32.add (local.get $r) (i32.const 1)))
      (br $rl2))))

  ;; out[i] = wte[idx[i]] + wpe[i mod T]   (idx: int32, B*T of them; rows of C floats)
  (func (export "embed") (param $wte i32) (param $wpe i32) (param $idx i32) (param $out i32) (param $BT i32) (param $T i32) (param $C i32)
    (local $i i32) (local $t i32) (local $k i32) (local $cb i32) (local $tok i32) (local $pos i32)
    (local.set $cb (i32.shl (local.get $C) (i32.const 2)))
    (block $done (loop $rows
      (br_if $done (i32.ge_u (local.get $i) (local.get $BT)))
      (local.set $tok (i32.add (local.get $wte) (i32.mul (i32.load (i32.add (local.get $idx) (i32.shl (local.get $i) (i32.const 2)))) (local.get $cb))))
      (local.set $pos (i32.add (local.get $wpe) (i32.mul (local.get $t) (local.get $cb))))
      (local.set $k (i32.const 0))
      (block $rdone (loop $cols
        (br_if $rdone (i32.ge_u (local.get $k) (local.get $cb)))
        (v128.store (i32.add (local.get $out) (local.get $k))
          (f32x4.add (v128.load (i32.add (local.get $tok) (local.get $k))) (v128.load (i32.add (local.get $pos) (local.get $k)))))
        (local.set $k (i32.add (local.get $k) (i32.const 16)))
        (br $cols)))
      (local.set $out (i32.add (local.get $out) (local.get $cb)))
      (local.set $t (i32.add (local.get $t) (i32.const 1)))
      (if (i32.eq (local.get $t) (local.get $T)) (then (local.set $t (i32.const 0))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $rows))))
)
