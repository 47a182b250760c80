# The GPU pack's torch anchor: float32 matmul TFLOP/s on the first CUDA device with TF32 off (true fp32),
# and with TF32 on for reference. Prints one JSON line; {"available": false, ...} without torch or CUDA.
import json, sys, time

def main():
    try:
        import torch
    except Exception as e:
        return {"available": False, "reason": f"no torch: {e}"}
    if not torch.cuda.is_available():
        return {"available": False, "reason": "torch has no CUDA device", "torch": torch.__version__}
    dev = torch.device("cuda:0")
    out = {"available": True, "torch": torch.__version__, "device": torch.cuda.get_device_name(0), "by_size": []}

    def bench(n, tf32):
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
        a = torch.randn(n, n, device=dev, dtype=torch.float32)
        b = torch.randn(n, n, device=dev, dtype=torch.float32)
        for _ in range(3):
            a @ b
        torch.cuda.synchronize()
        reps = 20
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        best = float("inf")
        for _ in range(3):
            start.record()
            for _ in range(reps):
                a @ b
            end.record()
            torch.cuda.synchronize()
            best = min(best, start.elapsed_time(end) / reps)
        return 2 * n ** 3 / (best / 1000) / 1e12, best

    for n in (4096, 8192):
        tflops, ms = bench(n, False)
        out["by_size"].append({"n": n, "tf32": False, "ms": ms, "tflops": tflops})
    tflops, ms = bench(8192, True)
    out["tf32_8192_tflops"] = tflops
    torch.backends.cuda.matmul.allow_tf32 = False
    out["best_tflops"] = max(x["tflops"] for x in out["by_size"])
    return out

if __name__ == "__main__":
    try:
        r = main()
    except Exception as e:
        r = {"available": False, "reason": f"{type(e).__name__}: {e}"}
    print(json.dumps(r))
    sys.stdout.flush()
