"""A PyTorch (or MONAI) style Dataset over ctprep's outputs.

`make dataset` / `scripts/ctprep.mk` write, per patient, `input.npy` (normalized, float32,
[z, y, x]) with its `input.json` sidecar and a lung mask `lungs.nii.gz`. This Dataset reads
them with ctprep (no nibabel needed) and returns numpy arrays; wrap them in tensors in
`__getitem__` when torch is installed:

    from torch.utils.data import DataLoader
    loader = DataLoader(CtprepDataset("out/"), batch_size=2, num_workers=4)

torch is not needed to run this file: `python examples/torch_dataset.py OUT_DIR` prints what
it would feed a network.
"""

import sys
from pathlib import Path

import numpy as np

import ctprep

try:  # The base class when torch is there; a plain object otherwise.
    from torch.utils.data import Dataset
except ImportError:  # pragma: no cover - torch is optional
    Dataset = object


class CtprepDataset(Dataset):
    """One item per patient folder holding `input.npy` (and optionally `lungs.nii.gz`)."""

    def __init__(self, root, image="input.npy", mask="lungs.nii.gz", patch=None):
        self.root = Path(root)
        self.items = sorted(p.parent for p in self.root.glob(f"*/{image}"))
        if not self.items and (self.root / image).exists():
            self.items = [self.root]
        self.image, self.mask, self.patch = image, mask, patch

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        folder = self.items[i]
        x = ctprep.read(folder / self.image)
        item = {"image": x.array[None], "affine": x.affine, "spacing": np.array(x.spacing), "patient": folder.name}
        if (folder / self.mask).exists():
            m = ctprep.read(folder / self.mask)
            item["mask"] = (m.array > 0)[None]
        if self.patch:  # a centred crop of `patch` voxels per axis, for fixed-size batches
            z, y, xx = (max(0, (s - p) // 2) for s, p in zip(x.shape, self.patch))
            sl = (slice(None), slice(z, z + self.patch[0]), slice(y, y + self.patch[1]), slice(xx, xx + self.patch[2]))
            item["image"] = item["image"][sl]
            if "mask" in item:
                item["mask"] = item["mask"][sl]
        try:  # tensors when torch is present
            import torch

            item["image"] = torch.from_numpy(np.ascontiguousarray(item["image"]))
        except ImportError:
            pass
        return item


if __name__ == "__main__":
    ds = CtprepDataset(sys.argv[1] if len(sys.argv) > 1 else ".", patch=(64, 64, 64))
    print(f"{len(ds)} item(s)")
    for k in range(len(ds)):
        it = ds[k]
        print(it["patient"], tuple(it["image"].shape), "mask" in it, it["spacing"])
