"""The bicubic baseline: the LR model fitted further at HR to the LR training views upsampled bicubically (x4).

A method of this kind is this module's one function and its entry in registry.py (`targets="bicubic"`): the rule
fit_hr_targets fits the LR model to hr_target(scene, view) of every training view, with the entry's HR budget.
"""

from __future__ import annotations

import torch

from ..data.scene import PreparedScene, SceneView


def hr_target(scene: PreparedScene, view: SceneView) -> torch.Tensor:
    """The training view's HR target: its LR image upsampled bicubically (HxWx3 float in [0, 1])."""
    return scene.bicubic(view)
