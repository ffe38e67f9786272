"""MLP predictor heads of SEW's pretraining (section 4.3): replace wav2vec 2.0's linear
``project_q`` / ``final_proj`` with  Conv1x1(in -> 4096, no bias) -> FP32 BatchNorm -> ReLU -> Conv1x1(4096 -> out).

Inputs are [B, M, C] over the masked frames only, so the BatchNorm statistics are taken over masked frames.
Parameter names follow the release (``net.0.weight``, ``net.1.*``, ``net.3.{weight,bias}``).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class Fp32BatchNorm1d(nn.BatchNorm1d):
    """BatchNorm1d that computes (and keeps running statistics) in fp32 whatever the input dtype."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and self.track_running_stats:
            self.num_batches_tracked.add_(1)
        momentum = 0.0 if self.momentum is None else self.momentum
        y = F.batch_norm(
            x.float(), self.running_mean, self.running_var,
            self.weight.float() if self.weight is not None else None,
            self.bias.float() if self.bias is not None else None,
            self.training or not self.track_running_stats, momentum, self.eps)
        return y.type_as(x)


class MLPHead(nn.Module):
    """Projection head on [..., C] tensors: [B, M, in_dim] -> [B, M, out_dim].

    Args:
        in_dim / out_dim: input and output channels.
        hidden_dim: hidden channels (release: 4096).
        num_layers: total conv layers (release: 2).
    """

    def __init__(self, in_dim: int, out_dim: int, hidden_dim: int = 4096, num_layers: int = 2):
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"mlp_num_layers={num_layers} must be >= 1")
        layers = []
        for _ in range(num_layers - 1):
            layers += [nn.Conv1d(in_dim, hidden_dim, 1, bias=False), Fp32BatchNorm1d(hidden_dim), nn.ReLU()]
            in_dim = hidden_dim
        layers.append(nn.Conv1d(in_dim, out_dim, 1))
        self.net = nn.Sequential(*layers)
        for m in self.modules():
            if isinstance(m, nn.Conv1d):
                nn.init.xavier_normal_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        x = x.reshape(-1, shape[-2], shape[-1]).transpose(1, 2)  # [N, C, M]
        x = self.net(x).transpose(1, 2).contiguous()  # [N, M, out]
        return x.reshape(*shape[:-1], x.size(-1))
