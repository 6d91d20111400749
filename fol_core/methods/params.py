"""A method's parameters, declared once: the CLI's flags, the app's controls, calibration's grid and the
bench's runs are all generated from these declarations, so no front end knows a method by heart."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import UserError


class ParamError(UserError):
    """A method parameter out of its range, or parameters that do not fit together."""


@dataclass(frozen=True)
class Param:
    """One parameter of a method's constructor."""

    name: str
    default: Any
    help: str
    kind: type = float
    """float, int or str."""
    low: float | None = None
    high: float | None = None
    """Inclusive range of a number (None: unbounded)."""
    step: float | None = None
    """The app's slider step."""
    words: tuple[str, ...] = ()
    """Words a number parameter also accepts (Grad-CAM's threshold: "otsu")."""
    choices: tuple[str, ...] = ()
    """The only values a str parameter takes (empty: free text)."""
    grid: tuple[float, ...] = ()
    """Values calibration tries (non-empty: this is the method's tuned parameter)."""
    advanced: bool = True
    """Shown in the app's Advanced panel (False: CLI and API only)."""
    trained_default: Any = None
    """The default on a model trained by `python -m fol_core train` (its heatmaps differ from ImageNet's
    head's), when one was measured; None: the same default."""

    def parse(self, value: Any) -> Any:
        """The value as the method takes it; ParamError with a one-line reason otherwise (None stays None)."""
        if value is None or (isinstance(value, str) and not value.strip() and self.kind is str):
            return None
        if isinstance(value, str) and value.strip().lower() in self.words:
            return value.strip().lower()
        if self.kind is str:
            text = str(value).strip()
            if self.choices and text not in self.choices:
                raise ParamError(f"{self.name} is one of {', '.join(self.choices)} (got {text!r})")
            return text
        try:
            number = float(value)
        except (TypeError, ValueError):
            also = f" or {', '.join(self.words)}" if self.words else ""
            raise ParamError(f"{self.name} must be a number{also} (got {value!r})") from None
        if self.kind is int:
            if number != int(number):
                raise ParamError(f"{self.name} must be a whole number (got {value!r})")
            number = int(number)
        if (self.low is not None and number < self.low) or (self.high is not None and number > self.high):
            raise ParamError(f"{self.name} must be between {self.low:g} and {self.high:g} (got {value!r})")
        return number

    def default_for(self, imagenet: bool) -> Any:
        """The default on an ImageNet model, or on a trained one (`Classifier.imagenet` False)."""
        return self.default if imagenet or self.trained_default is None else self.trained_default

    def describe(self) -> str:
        """The help text with the range and the default, for the CLI and the app."""
        bits = [self.help]
        if self.low is not None and self.high is not None:
            bits.append(f"{self.low:g} to {self.high:g}" + (f" or {', '.join(self.words)}" if self.words else ""))
        elif self.choices:
            bits.append(" | ".join(self.choices))
        if self.default is not None:
            bits.append(f"default {self.default}" + (f" ({self.trained_default} on a trained model)"
                                                     if self.trained_default is not None else ""))
        return "; ".join(bits)


LAYER = Param("layer", None, "conv layer (module path); default: the model registry's for this method", kind=str)
