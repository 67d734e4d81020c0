"""Build an SR model by its registry name with its options (params.yaml's sr block and the model's own)."""

from __future__ import annotations

import importlib

import torch

from .base import SRModel, auto_dtype
from .registry import spec


def load_sr_model(name: str, options: dict, device: torch.device, dtype: str = "auto") -> SRModel:
    """The SR model `name`, on `device` (fp16 on CUDA unless `dtype` says otherwise); `options["path"]` its weights."""
    s = spec(name)
    module, cls_name = s.implementation.split(":")
    cls = getattr(importlib.import_module(f".{module}", __package__), cls_name)
    kwargs = {k: options[k] for k in s.options if k in options}
    return cls.from_pretrained(options.get("path"), device=device, dtype=auto_dtype(device, dtype), **kwargs)
