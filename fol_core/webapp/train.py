"""The Train tab: photos sorted into a folder per class (an uploaded zip, or a server folder when the operator
allowed one) in, a trained model folder out, which the other tabs' model lists then offer.

Where the model goes follows `Access`: a local single-user run writes models/NAME (as the CLI does); on a
shared deployment each browser session writes into its own folder, removed with the session, so no visitor
replaces or sees another's models. A name already taken is refused, never overwritten.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..models import list_models, trained_models
from ..paths import folder_name
from ..training.data import TrainingError
from ..training.trainer import PARTIAL, Progress, Settings, train
from . import Access
from .prelabel import server_source

MAX_EPOCHS = 50
DEFAULT_EPOCHS = Settings().epochs
DEFAULT_TUNE_BLOCKS = Settings().tune_blocks
MAX_TUNE_BLOCKS = 3
"""The app offers the head alone (0) up to the last three stages (each one more costs about as much again)."""
SERIES = (("train_loss", "training loss"), ("val_loss", "held-out loss"), ("val_accuracy", "held-out accuracy"))
"""The history's columns the plot draws, and their names in its legend."""


@dataclass
class TrainView:
    note: str
    """Markdown: what was trained, how well, where it was written and how to use it."""
    history: pd.DataFrame
    """Long form (epoch, value, series) for the loss/accuracy plot."""
    folder: Path


def model_choices(access: Access, session: str | None) -> list[tuple[str, str]]:
    """(label, value) for the model lists: the registry's whose weights are on this server, the trained models
    every session sees, and on a shared deployment this session's own (value: the folder load_model reads)."""
    shared = [(name, name) for name in list_models(at_hand=True)] + [(p, p) for p in trained_models(access.models)]
    if access.shared:
        return shared
    own = trained_models(access.models_root(session)) if session else []
    return shared + [(f"{Path(p).name} (trained here)", p) for p in own]


def model_folder(access: Access, session: str | None, name: str | None) -> Path:
    """The folder for a new model called `name`: one safe folder name; a name already taken is refused."""
    clean = folder_name(name)
    if not clean:
        raise TrainingError("Give the model a name (letters, digits, dashes).")
    if clean.endswith(PARTIAL):
        raise TrainingError(f"{clean}: a model name cannot end in {PARTIAL}")
    folder = access.models_root(session) / clean
    if folder.exists() or (access.models / clean).exists():
        raise TrainingError(f"A model called {clean!r} already exists: choose another name.")
    return folder


def history_frame(history: list[dict]) -> pd.DataFrame:
    """The per-epoch history (the card's, or the rows reported so far) in long form for a line plot; epochs as
    text, so the axis ticks whole epochs only (the plot is given their order: it would sort text as text)."""
    rows = [{"epoch": str(row["epoch"]), "value": row[key], "series": label}
            for row in history for key, label in SERIES if key in row]
    return pd.DataFrame(rows, columns=["epoch", "value", "series"])


def run(access: Access, session: str | None, upload: str | None, folder: str | None, name: str | None,
        epochs: float | None, wsddn: bool, tune_blocks: float | None = None, progress: Progress | None = None,
        log: Callable[[str], None] | None = None) -> TrainView:
    """Train on an uploaded zip, or a server folder inside `access.folders`, into this session's models;
    `tune_blocks`: the backbone's last stages fine-tuned with the head (None: the default)."""
    text = (folder or "").strip()
    if upload:
        source: str | dict = upload
    elif text:
        source = server_source(text, access.folders, "folders")
    else:
        raise TrainingError("Upload a zip with a folder per class" +
                            (", or give a folder on this server." if access.folders else "."))
    out = model_folder(access, session, name)
    epochs = int(epochs or DEFAULT_EPOCHS)
    if not 1 <= epochs <= MAX_EPOCHS:
        raise TrainingError(f"epochs: between 1 and {MAX_EPOCHS}")
    blocks = DEFAULT_TUNE_BLOCKS if tune_blocks is None else int(tune_blocks)
    if not 0 <= blocks <= MAX_TUNE_BLOCKS:
        raise TrainingError(f"stages to fine-tune: between 0 and {MAX_TUNE_BLOCKS}")
    lines: list[str] = []

    def keep(line: str) -> None:
        lines.append(line)
        if log:
            log(line)

    result = train(source, out, Settings(epochs=epochs, wsddn=bool(wsddn), tune_blocks=blocks), "folders", progress=progress, log=keep)
    card = result.card
    m = card["metrics"]
    warned = [line for line in lines if line.startswith(("skipped ", "note: "))]
    where = (f"`{out}`" if access.shared else f"this session's folder (`{out.name}`, deleted when the tab "
             "is closed or reloaded)")
    use = f"`--model {out}`" if access.shared else "the app's model lists"
    note = (f"**{html.escape(out.name)}**, classes {html.escape(', '.join(card['classes']))} · held-out accuracy "
            f"{m['val_accuracy']:.1%} on {m['val_images']} images (best epoch {m['best_epoch']} of {m['epochs_run']}) · "
            f"{m['train_images']} training images, {m['negatives']} of all {m['train_images'] + m['val_images']} "
            f"holding none of the classes · {card['training']['seconds']:.0f} s"
            + f"\n\nWritten to {html.escape(where)}. Use it with {use}: pick **{html.escape(out.name)}** as the "
            "Model in Localize, Pre-label or Dataset map (any method" + (", WSDDN too" if wsddn else "") + ")."
            + "".join(f"\n- ⚠️ {html.escape(s.removeprefix('note: '))}" for s in warned[:10]))
    return TrainView(note, history_frame(card["history"]), out)


def progress_steps(report: Callable[..., None], epochs: int) -> Progress:
    """A per-epoch training callback that forwards to a progress bar taking ((done, total), desc, unit)."""
    def step(row: dict) -> None:
        report((row["epoch"], epochs), desc=f"Epoch {row['epoch']}: held-out loss {row['val_loss']:.3f}, "
                                            f"accuracy {row['val_accuracy']:.0%}", unit="epochs")
    return step

