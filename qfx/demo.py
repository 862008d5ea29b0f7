"""The README's main job, for the parts of qfx that exist so far.

Trains a small fixed-point MLP on scikit-learn's bundled digits (real data, offline) with learned
binary points, then evaluates it with the exact ap_fixed arithmetic and prints the learned formats.
Run: ``python -m qfx.demo``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from qfx import FixedQuantizer


class _FixedMLP(nn.Module):
    def __init__(self, width: int = 6) -> None:
        super().__init__()
        self.qin = FixedQuantizer(width, signed=False)
        self.fc1 = nn.Linear(64, 32)
        self.qw1 = FixedQuantizer(width, per_channel=True, num_channels=32)
        self.qa1 = FixedQuantizer(width, signed=False)
        self.fc2 = nn.Linear(32, 10)
        self.qw2 = FixedQuantizer(width)
        self.qout = FixedQuantizer(width + 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.qin(x)
        x = self.qa1(torch.relu(nn.functional.linear(x, self.qw1(self.fc1.weight).to(x.dtype),
                                                     self.fc1.bias.to(x.dtype))))
        return self.qout(nn.functional.linear(x, self.qw2(self.fc2.weight).to(x.dtype),
                                              self.fc2.bias.to(x.dtype)))


def main() -> None:
    from sklearn.datasets import load_digits

    torch.manual_seed(0)
    data = load_digits()
    x = torch.tensor(data.data / 16.0, dtype=torch.float32)
    y = torch.tensor(data.target)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    train, test = perm[:1400], perm[1400:]
    model = _FixedMLP()
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in tqdm(range(30), desc="training (6-bit fixed point)", unit="epoch"):
        model.train()
        for idx in train.split(64):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        acc = (model(x[test]).argmax(1) == y[test]).double().mean().item()
    print(f"held-out accuracy with exact ap_fixed arithmetic: {acc:.3f}")
    for name, m in model.named_modules():
        if isinstance(m, FixedQuantizer):
            types = sorted({t.cpp() for t in m.fixed_types})
            shown = ", ".join(types) if len(types) < 4 else f"{len(types)} per-channel formats"
            print(f"  {name:5s} learned {shown}")
    if not np.isfinite(acc) or acc < 0.85:
        raise SystemExit(f"accuracy {acc:.3f} is below the 0.85 this demo expects")


if __name__ == "__main__":
    main()
