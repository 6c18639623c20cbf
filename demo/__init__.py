"""Bundled demo: a generated pottery snapshot and a small YOLO-seg candidate (see build_demo_assets)."""
