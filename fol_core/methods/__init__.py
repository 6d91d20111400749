"""Localization methods by name."""

from __future__ import annotations

from .base import ForwardPass, Method
from .cam import CAM, GradCAM
from .fol import FastLocalization

METHODS: dict[str, type[Method]] = {m.name: m for m in (FastLocalization, GradCAM, CAM)}

__all__ = ["CAM", "METHODS", "FastLocalization", "ForwardPass", "GradCAM", "Method"]
