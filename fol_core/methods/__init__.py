"""Localization methods by name: adding a method is one module with its class, plus its line here."""

from __future__ import annotations

from ..models import Classifier
from .base import ForwardPass, Method, UnknownMethodError
from .cam import CAM, GradCAM
from .fol import FastLocalization
from .mscam import MultiScaleCAM
from .params import LAYER, Param, ParamError
from .wsddn import WSDDN

METHODS: dict[str, type[Method]] = {m.name: m for m in (MultiScaleCAM, FastLocalization, GradCAM, CAM, WSDDN)}
"""Every method, by name, in the order front ends list them."""
DEFAULT_METHOD = "mscam"
"""What the CLI, the app and the pre-labeler use unless told otherwise: the best boxes on the dev set
(README, Results); FOL, the paper's method, is one choice away."""


def get_method(name: str) -> type[Method]:
    try:
        return METHODS[name]
    except KeyError:
        raise UnknownMethodError(f"unknown method {name!r}; choose one of: {', '.join(METHODS)}") from None


def create_method(name: str, model: Classifier, **params: object) -> Method:
    """The method `name` on `model`, its parameters checked (ParamError, UnknownMethodError: one line)."""
    return get_method(name)(model, **params)


__all__ = [
    "CAM", "DEFAULT_METHOD", "LAYER", "METHODS", "WSDDN", "FastLocalization", "ForwardPass", "GradCAM", "Method",
    "MultiScaleCAM", "Param",
    "ParamError", "UnknownMethodError", "create_method", "get_method",
]
