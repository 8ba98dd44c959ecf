"""Stage 0: decode videos with PyAV into compressed frame stores, sampled by timestamp.

Python API (in `stages.decode.video`): `decode_video`, `probe_video`, `VideoInfo`,
`read_frames`. Nothing is imported here, so `motionseg --help` does not load PyAV or zarr.
"""
