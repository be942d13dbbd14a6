"""Load vol-mesh outputs with trimesh and report what external viewers will see (run by hand).

Usage: mesh_check.py MESH.stl|MESH.obj ...
"""
import sys

import trimesh

for path in sys.argv[1:]:
    m = trimesh.load(path, force="mesh", process=True)
    parts = m.split(only_watertight=False)
    print(
        f"{path}: {len(m.vertices)} vertices, {len(m.faces)} faces, {len(parts)} bodies, "
        f"watertight {m.is_watertight}, winding consistent {m.is_winding_consistent}, "
        f"volume {m.volume / 1000:.2f} mL, euler {m.euler_number}, "
        f"bounds (LPS mm) {m.bounds.round(1).tolist()}"
    )
