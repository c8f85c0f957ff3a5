"""Here, before a GPU is lent: build .gpu/ (the data pack and the wheels the device lacks) and check
that what travels fits the device machine's 64 MiB upload.

    python bench/gpu/prepare.py            # then: run(command="bash bench/gpu/run.sh", carry=[".gpu"])
"""

from __future__ import annotations

import argparse
import importlib.metadata
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))
UPLOAD_LIMIT = 64 * 2**20
WHEELS = ("torch-pruning",)  # what prunelab imports and the device image lacks (its page lists the rest)


def wheels(folder: Path) -> list[Path]:
    """Download py3.12 manylinux x86_64 wheels of WHEELS, at the versions installed here."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in WHEELS:
        version = importlib.metadata.version(name)
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                        "--python-version", "3.12", "--implementation", "cp",
                        "--platform", "manylinux_2_28_x86_64", "--platform", "manylinux_2_17_x86_64",
                        "--platform", "manylinux2014_x86_64", "-d", str(folder), f"{name}=={version}"],
                       check=True)
    return sorted(folder.glob("*.whl"))


def upload_bytes(gpu: Path) -> int:
    """Bytes that travel: tracked and untracked-not-ignored files, and the carried .gpu folder."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, check=True,
                            capture_output=True).stdout.decode().split("\0")
    tree = sum((ROOT / f).stat().st_size for f in listed if f and (ROOT / f).is_file())
    return tree + sum(p.stat().st_size for p in gpu.rglob("*") if p.is_file())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--gpu", type=Path, default=ROOT / ".gpu")
    parser.add_argument("--force", action="store_true", help="rebuild the pack even if it is there")
    args = parser.parse_args()
    from pack import pack

    data = args.shared / "data" / "cifar10"
    sources = data / "cifar10_subset.npz", data / "cifar10_full_jpeg_q75.npz"
    target = args.gpu / "data" / "cifar10_pack.npz"
    if not target.exists() or args.force:
        missing = [s for s in sources if not s.is_file()]
        if missing:
            print(f"error: {missing[0]} is missing; pass --shared FOLDER holding data/cifar10",
                  file=sys.stderr)
            return 2
        target.parent.mkdir(parents=True, exist_ok=True)
        pack(*sources, target)
    found = wheels(args.gpu / "whl")
    def git(*words: str) -> str:
        return subprocess.run(["git", *words], cwd=ROOT, capture_output=True, text=True).stdout.strip()

    dirty = " (with uncommitted changes)" if git("status", "--porcelain") else ""
    (args.gpu / "commit.txt").write_text(git("rev-parse", "HEAD") + dirty + "\n")
    size = upload_bytes(args.gpu)
    print(f"pack {target.stat().st_size:,} B, wheels {', '.join(w.name for w in found)}; "
          f"upload {size:,} B of {UPLOAD_LIMIT:,} ({size / UPLOAD_LIMIT:.1%})")
    if size > UPLOAD_LIMIT:
        print("error: what travels is over the device's 64 MiB upload; remove untracked files or "
              "shrink the pack", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
