"""Import and export speed of the MS-TCN layout on a Breakfast-sized synthetic folder.

    python benchmarks/bench_mstcn.py [--videos 1712] [--dim 2048] [--frames 20 40] [--h5]

Writes a folder of `--videos` videos (features (D, T) float32, T uniform in `--frames`, 4
classes, 4 splits; `stages.data.mstcn_synth`), then times `import_mstcn` (checks, Zarr stores,
aligned labels, manifest) and `export_mstcn` (stores back to .npy, labels, bundles, mapping),
and prints videos/s and MB/s of feature data. Real Breakfast I3D files average ~2,100 frames
(~17 MB each, ~29 GB in all): scale the per-MB figure, not the per-video one, to them.
Progress lines go to stderr every MOTIONSEG_PROGRESS_SECONDS (default 30).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from stages.common.manifest import load_manifest
from stages.data.mstcn import import_mstcn
from stages.data.mstcn_synth import write_mstcn_folder
from stages.features.export import export_mstcn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=1712)
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--frames", type=int, nargs=2, default=(20, 40))
    parser.add_argument("--h5", action="store_true", help="Also time the HDF5 variant.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "files"
        start = time.perf_counter()
        write_mstcn_folder(root, args.videos, 4, args.dim, tuple(args.frames))
        written = time.perf_counter() - start
        megabytes = sum(p.stat().st_size for p in (root / "features").iterdir()) / 1e6
        print(f"{args.videos} videos, D={args.dim}, {megabytes:.0f} MB of .npy ({written:.1f} s)")

        rows = []
        start = time.perf_counter()
        import_mstcn(root, Path(tmp) / "imported")
        rows.append(("import (npy)", time.perf_counter() - start))
        if args.h5:
            with h5py.File(Path(tmp) / "f.h5", "w") as f:
                for npy in (root / "features").iterdir():
                    f.create_dataset(npy.stem, data=np.load(npy))
            start = time.perf_counter()
            import_mstcn(root, Path(tmp) / "imported_h5", h5=Path(tmp) / "f.h5")
            rows.append(("import (HDF5)", time.perf_counter() - start))
        out = Path(tmp) / "imported"
        manifest = load_manifest(out / "manifest", out)
        start = time.perf_counter()
        export_mstcn(manifest, out / "features", Path(tmp) / "exported")
        rows.append(("export", time.perf_counter() - start))
        print(f"{'step':<14} {'seconds':>8} {'videos/s':>9} {'MB/s':>7}")
        for name, seconds in rows:
            print(
                f"{name:<14} {seconds:8.1f} {args.videos / seconds:9.1f} {megabytes / seconds:7.1f}"
            )


if __name__ == "__main__":
    main()
