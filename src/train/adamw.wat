;; AdamW and the gradient's sum of squares over flat float32 arrays, in WebAssembly SIMD (four lanes):
;; the optimizer of the CPU backends (src/train/host-adamw.ts). Compiled by scripts/build-wasm.ts into
;; src/train/adamw-wasm.ts. Pointers are byte offsets into the imported memory; n counts floats.
;; Each operation rounds to float32 in the same order as the tfjs AdamW (src/train/optim.ts), so both
;; give the same bits.
(module
  (import "env" "memory" (memory {limits}))

  ;; g' = g * gscale; m = m * b1 + g' * (1 - b1); v = v * b2 + (g' * g') * (1 - b2);
  ;; p = p - (m / bc1 / (sqrt(v / bc2) + eps) + p * wd) * lr   (wd 0 for parameters without decay)
  (func (export "adamw")
    (param $p i32) (param $g i32) (param $m i32) (param $v i32) (param $n i32)
    (param $gscale f32) (param $b1 f32) (param $omb1 f32) (param $b2 f32) (param $omb2 f32)
    (param $bc1 f32) (param $bc2 f32) (param $eps f32) (param $wd f32) (param $lr f32)
    (local $i i32) (local $bytes i32) (local $bulk i32)
    (local $x v128) (local $mv v128) (local $vv v128) (local $pv v128)
    (local $sgs v128) (local $sb1 v128) (local $somb1 v128) (local $sb2 v128) (local $somb2 v128)
    (local $sbc1 v128) (local $sbc2 v128) (local $seps v128) (local $swd v128) (local $slr v128)
    (local $gs f32) (local $ms f32) (local $vs f32) (local $ps f32)
    (local.set $sgs (f32x4.splat (local.get $gscale)))
    (local.set $sb1 (f32x4.splat (local.get $b1)))
    (local.set $somb1 (f32x4.splat (local.get $omb1)))
    (local.set $sb2 (f32x4.splat (local.get $b2)))
    (local.set $somb2 (f32x4.splat (local.get $omb2)))
    (local.set $sbc1 (f32x4.splat (local.get $bc1)))
    (local.set $sbc2 (f32x4.splat (local.get $bc2)))
    (local.set $seps (f32x4.splat (local.get $eps)))
    (local.set $swd (f32x4.splat (local.get $wd)))
    (local.set $slr (f32x4.splat (local.get $lr)))
    (local.set $bytes (i32.shl (local.get $n) (i32.const 2)))
    (local.set $bulk (i32.and (local.get $bytes) (i32.const -16)))
    (block $bulk_done
      (loop $bulk_loop
        (br_if $bulk_done (i32.ge_u (local.get $i) (local.get $bulk)))
        (local.set $x (f32x4.mul (v128.load (i32.add (local.get $g) (local.get $i))) (local.get $sgs)))
        (local.set $mv (f32x4.add
          (f32x4.mul (v128.load (i32.add (local.get $m) (local.get $i))) (local.get $sb1))
          (f32x4.mul (local.get $x) (local.get $somb1))))
        (local.set $vv (f32x4.add
          (f32x4.mul (v128.load (i32.add (local.get $v) (local.get $i))) (local.get $sb2))
          (f32x4.mul (f32x4.mul (local.get $x) (local.get $x)) (local.get $somb2))))
        (local.set $pv (v128.load (i32.add (local.get $p) (local.get $i))))
        (v128.store (i32.add (local.get $m) (local.get $i)) (local.get $mv))
        (v128.store (i32.add (local.get $v) (local.get $i)) (local.get $vv))
        (v128.store (i32.add (local.get $p) (local.get $i))
          (f32x4.sub (local.get $pv)
            (f32x4.mul
              (f32x4.add
                (f32x4.div (f32x4.div (local.get $mv) (local.get $sbc1))
                           (f32x4.add (f32x4.sqrt (f32x4.div (local.get $vv) (local.get $sbc2))) (local.get $seps)))
                (f32x4.mul (local.get $pv) (local.get $swd)))
              (local.get $slr))))
        (local.set $i (i32.add (local.get $i) (i32.const 16)))
        (br $bulk_loop)))
    (block $tail_done
      (loop $tail_loop
        (br_if $tail_done (i32.ge_u (local.get $i) (local.get $bytes)))
        (local.set $gs (f32.mul (f32.load (i32.add (local.get $g) (local.get $i))) (local.get $gscale)))
        (local.set $ms (f32.add
          (f32.mul (f32.load (i32.add (local.get $m) (local.get $i))) (local.get $b1))
          (f32.mul (local.get $gs) (local.get $omb1))))
        (local.set $vs (f32.add
          (f32.mul (f32.load (i32.add (local.get $v) (local.get $i))) (local.get $b2))
          (f32.mul (f32.mul (local.get $gs) (local.get $gs)) (local.get $omb2))))
        (local.set $ps (f32.load (i32.add (local.get $p) (local.get $i))))
        (f32.store (i32.add (local.get $m) (local.get $i)) (local.get $ms))
        (f32.store (i32.add (local.get $v) (local.get $i)) (local.get $vs))
        (f32.store (i32.add (local.get $p) (local.get $i))
          (f32.sub (local.get $ps)
            (f32.mul
              (f32.add
                (f32.div (f32.div (local.get $ms) (local.get $bc1))
                         (f32.add (f32.sqrt (f32.div (local.get $vs) (local.get $bc2))) (local.get $eps)))
                (f32.mul (local.get $ps) (local.get $wd)))
              (local.get $lr))))
        (local.set $i (i32.add (local.get $i) (i32.const 4)))
        (br $tail_loop))))

  ;; sum of x[i]^2 for i < n, each square and sum in float64 (two lanes of two accumulators)
  (func (export "sumsq") (param $x i32) (param $n i32) (result f64)
    (local $i i32) (local $bytes i32) (local $bulk i32) (local $v v128) (local $lo v128) (local $hi v128)
    (local $a v128) (local $b v128) (local $s f64) (local $f f64)
    (local.set $a (f64x2.splat (f64.const 0)))
    (local.set $b (f64x2.splat (f64.const 0)))
    (local.set $bytes (i32.shl (local.get $n) (i32.const 2)))
    (local.set $bulk (i32.and (local.get $bytes) (i32.const -16)))
    (block $bulk_done
      (loop $bulk_loop
        (br_if $bulk_done (i32.ge_u (local.get $i) (local.get $bulk)))
        (local.set $v (v128.load (i32.add (local.get $x) (local.get $i))))
        (local.set $lo (f64x2.promote_low_f32x4 (local.get $v)))
        (local.set $hi (f64x2.promote_low_f32x4
          (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $v) (local.get $v))))
        (local.set $a (f64x2.add (local.get $a) (f64x2.mul (local.get $lo) (local.get $lo))))
        (local.set $b (f64x2.add (local.get $b) (f64x2.mul (local.get $hi) (local.get $hi))))
        (local.set $i (i32.add (local.get $i) (i32.const 16)))
        (br $bulk_loop)))
    (local.set $a (f64x2.add (local.get $a) (local.get $b)))
    (local.set $s (f64.add (f64x2.extract_lane 0 (local.get $a)) (f64x2.extract_lane 1 (local.get $a))))
    (block $tail_done
      (loop $tail_loop
        (br_if $tail_done (i32.ge_u (local.get $i) (local.get $bytes)))
        (local.set $f (f64.promote_f32 (f32.load (i32.add (local.get $x) (local.get $i)))))
        (local.set $s (f64.add (local.get $s) (f64.mul (local.get $f) (local.get $f))))
        (local.set $i (i32.add (local.get $i) (i32.const 4)))
        (br $tail_loop)))
    (local.get $s))
)
