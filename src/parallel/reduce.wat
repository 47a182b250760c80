;; The collectives' arithmetic, in WebAssembly SIMD (128-bit: four float32 lanes).
;; A JavaScript loop over Float32Arrays runs at ~1 ns per element here; these run at memory speed.
;; Compiled by scripts/build-wasm.ts into src/parallel/reduce-wasm.ts, once with a plain memory and once
;; with a shared one (the memory type below): a module's imported memory must match the memory it is given.
;; Every pointer is a byte offset into the imported memory; n counts float32 elements.
(module
  (import "env" "memory" (memory {limits}))

  ;; dst[i] = (a[i] + b[i]) * s for i < n. dst may be a or b (in place).
  (func (export "add_scaled") (param $dst i32) (param $a i32) (param $b i32) (param $n i32) (param $s f32)
    (local $i i32) (local $bytes i32) (local $bulk i32) (local $vs v128)
    (local.set $vs (f32x4.splat (local.get $s)))
    (local.set $bytes (i32.shl (local.get $n) (i32.const 2)))
    (local.set $bulk (i32.and (local.get $bytes) (i32.const -64)))
    ;; 16 floats (four vectors) per iteration
    (block $bulk_done
      (loop $bulk_loop
        (br_if $bulk_done (i32.ge_u (local.get $i) (local.get $bulk)))
        (v128.store offset=0 (i32.add (local.get $dst) (local.get $i))
          (f32x4.mul (local.get $vs)
            (f32x4.add (v128.load offset=0 (i32.add (local.get $a) (local.get $i)))
                       (v128.load offset=0 (i32.add (local.get $b) (local.get $i))))))
        (v128.store offset=16 (i32.add (local.get $dst) (local.get $i))
          (f32x4.mul (local.get $vs)
            (f32x4.add (v128.load offset=16 (i32.add (local.get $a) (local.get $i)))
                       (v128.load offset=16 (i32.add (local.get $b) (local.get $i))))))
        (v128.store offset=32 (i32.add (local.get $dst) (local.get $i))
          (f32x4.mul (local.get $vs)
            (f32x4.add (v128.load offset=32 (i32.add (local.get $a) (local.get $i)))
                       (v128.load offset=32 (i32.add (local.get $b) (local.get $i))))))
        (v128.store offset=48 (i32.add (local.get $dst) (local.get $i))
          (f32x4.mul (local.get $vs)
            (f32x4.add (v128.load offset=48 (i32.add (local.get $a) (local.get $i)))
                       (v128.load offset=48 (i32.add (local.get $b) (local.get $i))))))
        (local.set $i (i32.add (local.get $i) (i32.const 64)))
        (br $bulk_loop)))
    ;; the last n mod 16 floats, one at a time
    (block $tail_done
      (loop $tail_loop
        (br_if $tail_done (i32.ge_u (local.get $i) (local.get $bytes)))
        (f32.store (i32.add (local.get $dst) (local.get $i))
          (f32.mul (local.get $s)
            (f32.add (f32.load (i32.add (local.get $a) (local.get $i)))
                     (f32.load (i32.add (local.get $b) (local.get $i))))))
        (local.set $i (i32.add (local.get $i) (i32.const 4)))
        (br $tail_loop))))
)
