"""The Python steps of benchmarks/gpu.sh and benchmarks/gpu_pack.sh (imported by neither; run as a script).

    python benchmarks/_gpu.py databases DATA_DIR               copy the test questions' databases into DATA_DIR/database
    python benchmarks/_gpu.py unpack ARCHIVE.tar.xz DEST       (Python's own xz: the GPU image may have no xz program)
    python benchmarks/_gpu.py environment OUT.json             versions, the GPU, and one bitsandbytes op on it
    python benchmarks/_gpu.py convert GGUF SHA256_FILE CHECKPOINT_DIR   check the joined GGUF file, convert it
    python benchmarks/_gpu.py summary OUT_DIR STAGES.tsv ENV.json       gpu_summary.json and the closing table
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import xml.etree.ElementTree as ET
from pathlib import Path


def databases(data_dir: str) -> None:
    """The SQLite files the split's test questions run on, into `database/<db_id>/` beside the split (gpu_spider.py
    points the examples there on the GPU machine)."""
    import torch

    data = Path(data_dir)
    dbs = {Path(ex["db_path"]) for ex in torch.load(data / "test.pt", weights_only=False)}
    for db in sorted(dbs):
        (data / "database" / db.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(db, data / "database" / db.parent.name / db.name)
    print(f"{len(dbs)} test databases, {sum(db.stat().st_size for db in dbs) / 2**20:.1f} MiB")


def unpack(archive: str, dest: str) -> None:
    import tarfile

    with tarfile.open(archive, "r:xz") as tar:
        tar.extractall(dest, filter="data")
    print(f"unpacked {archive} into {dest}")


def environment(out: str) -> None:
    """What the machine has, as JSON and on stdout; on a GPU, one 4-bit quantization there, so that a bitsandbytes
    build without this CUDA shows here and not in the middle of a stage."""
    import importlib.metadata as md
    import os

    import torch

    info = {"python": sys.version.split()[0], "torch": torch.__version__, "cuda": torch.version.cuda,
            "cuda_available": torch.cuda.is_available(), "cpus": os.cpu_count()}
    for name in ("lightning", "bitsandbytes", "transformers", "peft", "litgpt", "jsonargparse", "sqlglot", "gguf",
                 "tokenizers", "pytest"):
        try:
            info[name] = md.version(name)
        except md.PackageNotFoundError:
            info[name] = None
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info["gpu"] = (f"{props.name}, {props.total_memory / 2**30:.0f} GiB, "
                       f"compute capability {props.major}.{props.minor}")
        try:
            import bitsandbytes.functional as bnbf

            w = torch.randn(256, 256, device="cuda", dtype=torch.bfloat16)
            packed, state = bnbf.quantize_4bit(w, quant_type="nf4")
            error = (bnbf.dequantize_4bit(packed, state) - w).abs().mean().item()
            info["bitsandbytes_cuda"] = f"nf4 round trip on the GPU: mean error {error:.4f}"
        except Exception as e:  # reported, not fatal: the stages that need it report it again
            info["bitsandbytes_cuda"] = f"FAILED: {type(e).__name__}: {str(e)[:300]}"
    Path(out).write_text(json.dumps(info, indent=2))
    print(json.dumps(info, indent=2))


def convert(gguf: str, sha256_file: str, checkpoint_dir: str) -> None:
    """Check the GGUF file joined from its two parts against the packed hash, then convert it as `lit-sql download`
    does (lit_sql.checkpoint.convert_gguf)."""
    from lit_sql.checkpoint import convert_gguf

    digest = hashlib.sha256()
    with open(gguf, "rb") as f:
        while chunk := f.read(1 << 24):
            digest.update(chunk)
    expected = Path(sha256_file).read_text().split()[0]
    if digest.hexdigest() != expected:
        raise SystemExit(f"{gguf}: sha256 {digest.hexdigest()} is not the packed file's {expected}: a part is missing "
                         f"or from another pack (run benchmarks/gpu_pack.sh again and carry both stages)")
    convert_gguf(Path(gguf), Path(checkpoint_dir), model_name="SmolLM2-135M-Instruct")
    print(f"converted into {checkpoint_dir}")


def _tests(xml: Path) -> dict | None:
    if not xml.is_file():
        return None
    suite = ET.parse(xml).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    counts["failed"] = []
    for case in suite.iter("testcase"):
        problem = case.find("failure") if case.find("failure") is not None else case.find("error")
        if problem is not None:
            counts["failed"].append(f"{case.get('name')}: {problem.get('message', '')[:200]}")
    return counts


def summary(out_dir: str, stages_tsv: str, env_json: str) -> None:
    """gpu_summary.json (stages, their time, the environment, the figures) and a table on stdout."""
    out = Path(out_dir)
    stages = []
    if Path(stages_tsv).is_file():
        for line in Path(stages_tsv).read_text().splitlines():
            name, status, seconds = line.split("\t")
            stages.append({"stage": name, "status": status, "seconds": int(seconds)})
    env = json.loads(Path(env_json).read_text()) if Path(env_json).is_file() else {}
    finetune = out / "finetune_gpu.json"
    spider = out / "spider_split_gpu.json"
    result = {"environment": env, "stages": stages,
              "tests": _tests(out / "pytest_cuda.xml"), "strategies": _tests(out / "pytest_strategies.xml"),
              "finetune_gpu": json.loads(finetune.read_text()) if finetune.is_file() else None,
              "spider_split_gpu": json.loads(spider.read_text()) if spider.is_file() else None}
    (out / "gpu_summary.json").write_text(json.dumps(result, indent=2) + "\n")

    print("\n================ GPU summary ================")
    print(f"{env.get('gpu', 'no GPU')}; torch {env.get('torch')} (CUDA {env.get('cuda')}), bitsandbytes "
          f"{env.get('bitsandbytes')}: {env.get('bitsandbytes_cuda', '-')}")
    for s in stages:
        print(f"  {s['stage']:9s} {s['seconds']:4d} s  {s['status']}")
    print(f"  total     {sum(s['seconds'] for s in stages):4d} s")
    for key in ("tests", "strategies"):
        t = result[key]
        if t:
            print(f"{key}: {t['tests']} run, {t['failures']} failed, {t['errors']} errors, {t['skipped']} skipped")
            for failure in t["failed"]:
                print(f"  FAILED {failure}")
    f = result["finetune_gpu"]
    if f:
        print(f"QLoRA 7B ({f['settings']['quantize']}, {f['settings']['seq_len']} tokens):")
        for tool, sizes in f["by_micro_batch"].items():
            for size, rate in sizes.items():
                peak = f["peak_memory_gib"].get(tool, {}).get(size)
                print(f"  {tool:32s} micro-batch {size}: {rate} tokens/s, peak {peak} GiB")
        for tool, error in f.get("errors", {}).items():
            print(f"  {tool}: {error.splitlines()[0][:200] if error else ''}")
    s = result["spider_split_gpu"]
    if s:
        print(f"Spider split, {s['n']} test questions: base {s['base']}%, by epoch {s['by_epoch']}, training "
              f"{s['training_wall_s']} s")
    print("Files:", ", ".join(sorted(p.name for p in out.iterdir())))


if __name__ == "__main__":
    commands = {"databases": databases, "unpack": unpack, "environment": environment, "convert": convert,
                "summary": summary}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        raise SystemExit(__doc__)
    commands[sys.argv[1]](*sys.argv[2:])
