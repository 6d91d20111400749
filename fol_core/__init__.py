"""fol: find objects in photos with an ImageNet classifier alone, show why, export editable boxes."""

from .engine import localize, select_classes
from .imagenet import resolve_class
from .images import ImageError, load_image
from .models import DEFAULT_MODEL, Classifier, ModelUnavailableError, list_models, load_model
from .result import Box, Explanation, Localization

__all__ = [
    "DEFAULT_MODEL", "Box", "Classifier", "Explanation", "ImageError", "Localization", "ModelUnavailableError",
    "list_models", "load_image", "load_model", "localize", "resolve_class", "select_classes",
]
