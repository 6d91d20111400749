"""fol's web app: localize a photo, see why, accept or nudge the boxes, export them; pre-label, review and
map whole image sets.

Layout and wiring only: every computation lives in fol_core.webapp, one module per tab.
"""

from __future__ import annotations

import argparse
import functools
import html
import logging
import os
from collections.abc import Callable
from pathlib import Path

import gradio as gr
from gradio_image_annotation import image_annotator

from fol_core import webapp
from fol_core.errors import UserError, one_line
from fol_core.images import IMAGE_SUFFIXES
from fol_core.methods import DEFAULT_METHOD, METHODS
from fol_core.models import DEFAULT_MODEL, load_model
from fol_core.webapp import dataset_map, localize, prelabel, review, train

EXAMPLES = Path(__file__).resolve().parent / "examples"
FIRST_EXAMPLES = ("coffee.png", "chelsea.png", "rocket.jpg")
"""The gallery's order: a class ImageNet has and the classifier is sure of first (espresso, 71%); the astronaut,
whom no ImageNet class names (its boxes say "bobsled", with a caution), after them."""
EXAMPLE_PHOTOS = sorted((str(p) for p in EXAMPLES.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES),
                        key=lambda p: (FIRST_EXAMPLES.index(Path(p).name) if Path(p).name in FIRST_EXAMPLES
                                       else len(FIRST_EXAMPLES), p))
EXAMPLE_EXTENSIONS = ["image", ".webp", ".tif", ".tiff", ".bmp"]
PROJECTS = Path(__file__).resolve().parent / "exports"
"""Where the Pre-label tab makes projects (exports/NAME) and the Review tab finds them, when projects are shared."""
MODELS = Path("models")
"""The trained models every session may use (as the CLI's --out models/NAME), and where a shared run trains."""
ACCESS = webapp.Access(PROJECTS, models=MODELS)
"""What visitors may reach (shared or per-session projects, the server folder they may read); serve() sets it."""
PROGRESS = gr.Progress()  # gradio gives each call its own tracker through this default
MAP_PROGRESS = gr.Progress(track_tqdm=True)  # follows the feature extraction's tqdm bar
LOG = logging.getLogger("fol.app")
WARNING_SECONDS = 5
"""How long the Review tab's warnings stay (a key that could not act); errors stay until closed."""
PUBLIC_MAX_UPLOAD = "1gb"
"""Largest upload a public deployment takes (a Space's disk is shared by every visitor); a local run has none."""


def handled(fn: Callable | None = None, *, keep: bool = False) -> Callable:
    """The one place errors meet the UI: a UserError becomes its one-line message; anything else is a bug,
    logged with its traceback on the server and shown as such. With keep (the Review tab's keys and clicks), a
    UserError is a warning and every output stays as it was: a stray key must not blank the photo on screen."""
    if fn is None:
        return functools.partial(handled, keep=keep)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except UserError as exc:
            if keep:  # gone in a few seconds: a stale one would seem to be about the image shown later
                gr.Warning(html.escape(one_line(exc)), duration=WARNING_SECONDS)
                return gr.skip()
            raise gr.Error(html.escape(one_line(exc)), title="Cannot do that", print_exception=False) from None
        except gr.Error:
            raise
        except Exception:
            LOG.exception("error in %s", fn.__name__)
            raise gr.Error("Something went wrong on the server; it has been logged.", title="Error",
                           print_exception=False) from None

    return wrapper


# --- Localize ---------------------------------------------------------------------------------------

def _preview(path: str | None) -> dict:
    """The uploaded photo's display copy, shown only while there is one."""
    if not path:
        return gr.update(value=None, visible=False)
    try:
        return gr.update(value=localize.open_photo(path)[1], visible=True)
    except UserError as exc:
        gr.Warning(html.escape(one_line(exc)), title="Not a usable photo")
        return gr.update(value=None, visible=False)


INTRO = "Upload a photo or pick an example, then press **Localize**."


def _cleared() -> tuple:
    """The Localize tab's results as before any run: shown when the photo changes, so that no result is ever
    shown beside a photo it is not of (boxed, why, top-5, summary, annotator, session photo, table, downloads)."""
    none, hidden = gr.update(value=None, interactive=False), gr.update(value=None, visible=False)
    return None, None, None, INTRO, image_annotator(value=None), None, [], none, none, hidden


def _pick_example(evt: gr.SelectData) -> tuple:
    """An example clicked: it becomes the photo, the old results go (it is then localized, see localize_tab)."""
    return EXAMPLE_PHOTOS[evt.index], *_cleared()


def _search_classes(query: str, selected: list | None, model_name: str) -> dict:
    """The model's named-classes list narrowed to the search, best matches first (localize.rank_classes), keeping
    the classes already chosen."""
    ranked = localize.rank_classes(query or "", model_name)
    shown = {index for _, index in ranked}
    kept = [choice for choice in localize.class_choices(model_name) if choice[1] in set(selected or ()) - shown]
    return gr.update(choices=ranked + kept)


@handled
def _on_model(model_name: str, method: str) -> list:
    """Load the model (its message if it cannot be), offer its methods and its classes to name (a trained model's
    own, not ImageNet's), and put its layers and defaults in the Advanced panel."""
    note, offered = "", model_name
    try:
        load_model(model_name)
    except UserError as exc:
        gr.Warning(html.escape(one_line(exc)), title=f"{model_name} is not available")
        note, offered = f"⚠️ {html.escape(one_line(exc))}", DEFAULT_MODEL
    named = gr.update(choices=localize.class_choices(offered), value=[], label=localize.classes_label(offered))
    return [note, named, _methods_of(offered, method), *localize.model_defaults(model_name)]


def _methods_of(model_name: str, method: str) -> dict:
    """The Method list for a model (localize.method_choices), the method chosen kept where the model runs it."""
    choices = localize.method_choices(model_name)
    return gr.update(choices=choices, value=method if method in {name for _, name in choices} else DEFAULT_METHOD)


def _on_method(method: str) -> list:
    return [gr.update(visible=name == method) for name in METHODS]


def _on_class_mode(mode: str) -> tuple[dict, dict, dict]:
    return gr.update(visible=mode == "topn"), gr.update(visible=mode == "named"), gr.update(visible=mode == "named")


@handled
def _localize(path, model_name, method, class_mode, topn, named, *controls, progress=PROGRESS):
    """Localize, show why, and open the boxes in the annotator."""
    progress(0.1, desc="Localizing…")
    params = localize.method_params(method, controls)
    view = localize.run_localize(path, model_name, method, class_mode, topn, named, params)
    progress(1.0, desc="Drawing…")
    return (
        view.boxed, view.why, view.top5, view.summary,
        image_annotator(value=view.annotator, label_list=view.labels, label_colors=view.label_colors),
        view.photo, localize.box_table(view.photo.boxes),
        gr.update(value=None, interactive=False), gr.update(value=None, interactive=False),
        gr.update(value=None, visible=False),
    )


@handled
def _accept(annotated, photo, workdir):
    """The boxes as the user left them, in the photo's pixels, written as VOC and COCO for download."""
    if photo is None or not annotated:
        raise localize.InputError("Localize a photo first, then accept its boxes.")
    boxes = photo.from_annotator(annotated.get("boxes") or [])
    workdir = webapp.workdir(workdir)
    voc_path, coco_path, upright = localize.export_files(photo, boxes, workdir)
    gr.Info(f"Accepted {len(boxes)} box{'es' if len(boxes) != 1 else ''}: the downloads are ready."
            + (" The photo is stored sideways: download it upright too, as the boxes are." if upright else ""))
    return (localize.box_table(boxes), gr.update(value=str(voc_path), interactive=True),
            gr.update(value=str(coco_path), interactive=True),
            gr.update(value=str(upright), visible=True) if upright else gr.update(value=None, visible=False), workdir)


def _control(control: localize.Control):
    """The Advanced panel's component for one method parameter (generated from its declaration)."""
    p = control.param
    if control.word:
        return gr.Checkbox(False, label=f"Use {control.word} instead")
    if p.name == "layer":
        return gr.Textbox(localize.control_default(control, DEFAULT_MODEL), label="Layer (module path)")
    if p.choices:
        return gr.Radio(list(p.choices), value=p.default, label=p.describe())
    if p.kind is str:  # free text (mscam's and WSDDN's scales: "224,320,448")
        return gr.Textbox(p.default, label=p.describe())
    if p.low is not None and p.high is not None:
        return gr.Slider(p.low, p.high, value=p.default, step=p.step or (1 if p.kind is int else 0.01),
                         label=f"{p.name}: {p.help.split(': ', 1)[-1]}")
    return gr.Number(p.default, label=p.describe())


def localize_tab() -> gr.Dropdown:
    """The Localize tab: one photo in; boxes, why, editable boxes and exports out. Returns its model list."""
    photo_state = gr.State(None)  # localize.Photo of this user's last run
    workdir = gr.State(None, delete_callback=webapp.remove_workdir)
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=320):
            photo = gr.File(label="1 · Photo (JPEG, PNG, WebP, TIFF…)", file_types=EXAMPLE_EXTENSIONS,
                            type="filepath", elem_id="photo-file")
            preview = gr.Image(label="Photo", interactive=False, height=220, show_label=False, visible=False,
                               elem_id="photo-preview")
            gr.Markdown("…or click an example to localize it", elem_id="example-note")
            # no floating label: it would cover the first example's corner
            examples = gr.Gallery(EXAMPLE_PHOTOS, label="Examples", show_label=False, columns=4, height=110,
                                  allow_preview=False, elem_id="example-gallery")
            model = gr.Dropdown(train.model_choices(ACCESS, None), value=DEFAULT_MODEL, label="Model",
                                elem_id="localize-model")
            model_note = gr.Markdown()
            method = gr.Radio(localize.method_choices(DEFAULT_MODEL), value=DEFAULT_METHOD, label="Method")
            class_mode = gr.Radio(localize.CLASS_MODES, value="top1", label="Which classes")
            topn = gr.Slider(2, 10, value=3, step=1, label="N: up to this many classes", visible=False)
            search = gr.Textbox(label="Search the classes (whole words first)", visible=False,
                                placeholder="e.g. cup", elem_id="class-search",
                                info="A class the model lacks (ImageNet has no raccoon): teach it in the Train tab.")
            named = gr.Dropdown(localize.class_choices(), multiselect=True, filterable=True, visible=False,
                                label=localize.classes_label(DEFAULT_MODEL), elem_id="named-classes")
            with gr.Accordion("Advanced", open=False):
                groups, controls = [], []
                for name in METHODS:
                    with gr.Group(visible=name == DEFAULT_METHOD) as group:
                        controls += [_control(c) for c in localize.CONTROLS if c.method == name]
                    groups.append(group)
            run = gr.Button("Localize", variant="primary", elem_id="localize-button")
        with gr.Column(scale=3, min_width=420):
            summary = gr.Markdown(INTRO, elem_id="summary")
            with gr.Row(equal_height=False):
                boxed = gr.Image(label="2 · Boxes", show_label=False, interactive=False, scale=3, height=400,
                                 elem_id="boxed")
                top5 = gr.Label(label="Top-5 classes", num_top_classes=5, scale=2, min_width=200)
    gr.Markdown("### Why: the evidence behind each box\nFOL: the photo, the chosen neurons' guided-backprop maps "
                "(p = the class probability on the photo masked by that neuron's blob), their union, the box "
                "(the paper's Figure 3). Grad-CAM / CAM: the class heatmap over the photo; multi-scale CAM: the same, "
                "spread over the pixels that look like it, dimmed where they do not look like an object and on the "
                "far side of the photo's normalized cut. "
                "WSDDN: the multi-scale class map its first boxes are cut from.")
    why = gr.Image(label="Why", show_label=False, interactive=False, format="png", height=340, elem_id="why")
    gr.Markdown("### 3 · Accept or nudge the boxes\nDrag a box to move it, drag its corners to resize it, "
                "double-click it to relabel or delete it, or draw a new one with the box tool. Then press "
                "**Accept** and download the boxes.")
    with gr.Row(equal_height=False):
        with gr.Column(scale=3, min_width=420):
            annotator = image_annotator(show_label=False, sources=[], show_clear_button=False,
                                        show_download_button=False, show_remove_button=True, image_type="filepath",
                                        box_min_size=4, boxes_alpha=0.15, elem_id="annotator")
        with gr.Column(scale=2, min_width=300):
            accept = gr.Button("Accept boxes", variant="primary", elem_id="accept-button")
            table = gr.Dataframe(headers=localize.BOX_TABLE_HEADERS, label="Boxes in the photo's pixels",
                                 interactive=False, wrap=True, elem_id="box-table")
            with gr.Row():
                voc_file = gr.DownloadButton("Pascal VOC XML", interactive=False, elem_id="download-voc")
                coco_file = gr.DownloadButton("COCO JSON", interactive=False, elem_id="download-coco")
                # only for a photo stored sideways (EXIF orientation): the boxes are the upright photo's
                upright_file = gr.DownloadButton("Photo, upright", visible=False, elem_id="download-upright")

    model_controls = [controls[i] for i in localize.MODEL_CONTROLS]
    results = [boxed, why, top5, summary, annotator, photo_state, table, voc_file, coco_file, upright_file]
    request = [photo, model, method, class_mode, topn, named, *controls]
    photo.change(_preview, photo, preview, api_visibility="private")
    # a new photo (uploaded, removed or an example) clears the results of the last one
    photo.upload(_cleared, None, results, api_visibility="private")
    photo.clear(_cleared, None, results, api_visibility="private")
    examples.select(_pick_example, None, [photo, *results], api_visibility="private").then(
        _localize, request, results, api_visibility="private").then(None, js=SELECT_MODE_JS)
    model.change(_on_model, [model, method], [model_note, named, method, *model_controls], api_visibility="private")
    method.change(_on_method, method, groups, api_visibility="private")
    class_mode.change(_on_class_mode, class_mode, [topn, search, named], api_visibility="private")
    search.change(_search_classes, [search, named, model], named, api_visibility="private")
    run.click(_localize, request, results, api_name="localize").then(None, js=SELECT_MODE_JS)
    accept.click(_accept, [annotator, photo_state, workdir], [table, voc_file, coco_file, upright_file, workdir],
                 api_name="accept")
    return model


# --- Pre-label --------------------------------------------------------------------------------------

def _projects(request: gr.Request | None) -> Path:
    """The projects folder this browser session sees (exports/ when shared, else its own)."""
    return ACCESS.root(request.session_hash if request else None)


@handled
def _project_choices(value: str | None, request: gr.Request) -> dict:
    names = review.list_projects(_projects(request))
    return gr.update(choices=names, value=value if value in names else None)


def _prelabeled(name: str, request: gr.Request) -> dict:
    """The Review tab's project list after a pre-label run, the project just made chosen: the next click is Open
    (none chosen if the name box was emptied meanwhile)."""
    try:
        made = review.project_folder(_projects(request), name).name
    except UserError:
        made = None
    return _project_choices(made, request)


def _end_session(request: gr.Request) -> None:
    """A browser session ended: its own projects (when projects are per session) go with it."""
    ACCESS.end_session(request.session_hash if request else None)


@handled
def _prelabel(folder, upload, name, map_text, label_mode, label_csv, method, limit, overwrite, model_name,
              topn=1, request: gr.Request = None, progress=PROGRESS):
    """Pre-label a folder (only under --allow-folders ROOT) or an uploaded zip into the session's projects."""
    return prelabel.run(_projects(request), folder, upload, name, map_text, label_mode, label_csv, method, limit,
                        overwrite, prelabel.progress_steps(progress), ACCESS.folders, model_name, topn)


def prelabel_tab() -> tuple[gr.Dropdown, gr.events.Dependency, gr.Textbox]:
    """The Pre-label tab: a folder or zip in, a resumable review project out. Returns its model list, its run
    event and the project name it was given."""
    where = ("The project lives in `exports/NAME` on this server" if ACCESS.shared else
             "The project belongs to this browser tab and is deleted when it is closed or reloaded: "
             "export and download what you want to keep (Review tab)")
    gr.Markdown(f"Propose boxes for a whole image set. {where}; run it again to carry on where it stopped "
                "(nothing is redone).")
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=320):
            folder = gr.Textbox(label=f"Folder of images on this server, in {getattr(ACCESS.folders, 'name', '')}/ "
                                      "(searched recursively)",
                                placeholder="photos, a saved dataset folder, hf:DIR or hf:OWNER/NAME",
                                visible=ACCESS.folders is not None, elem_id="prelabel-folder")
            upload = gr.File(label="…or upload a zip of images" if ACCESS.folders else "Upload a zip of images",
                             file_types=[".zip"], type="filepath", height=130, elem_id="prelabel-zip")
            name = gr.Textbox("my-project", label="Project name (exports/NAME)" if ACCESS.shared else "Project name",
                              elem_id="prelabel-name")
            label_mode = gr.Radio(prelabel.LABEL_MODES, value="none",
                                  label="Image-level labels (narrow the class to localize)")
            label_csv = gr.File(label="CSV of image-level labels", file_types=[".csv"], type="filepath", height=130,
                                visible=False)
            model = gr.Dropdown(train.model_choices(ACCESS, None), value=DEFAULT_MODEL,
                                label="Model (a trained one proposes its own classes)", elem_id="prelabel-model")
            method = gr.Radio(localize.method_choices(DEFAULT_MODEL), value=DEFAULT_METHOD, label="Method",
                              elem_id="prelabel-method")
            topn = gr.Slider(1, 5, value=1, step=1, elem_id="prelabel-topn",
                             label="Labels per image: the best, and each next one scoring close to it, gets its boxes")
            limit = gr.Number(0, precision=0, minimum=0, label="At most this many images now (0: all)")
            overwrite = gr.Checkbox(False, label="Start the project again if it holds another source (asks nothing more)")
            run = gr.Button("Pre-label", variant="primary", elem_id="prelabel-button")
        with gr.Column(scale=1, min_width=320):
            map_text = gr.Code("", language="yaml", interactive=True, elem_id="label-map",
                               label="Label map (YAML or JSON; empty: the project's, else ImageNet's)")
            with gr.Row():
                example = gr.Button("Insert an example map")
                check = gr.Button("Check the map")
            meaning = gr.Markdown(prelabel.check_map(""))
    result = gr.Markdown(elem_id="prelabel-result")
    check.click(prelabel.check_map, [map_text, model], meaning, api_visibility="private")
    map_text.blur(prelabel.check_map, [map_text, model], meaning, api_visibility="private")  # never a stale hint
    example.click(lambda m: (prelabel.LABEL_MAP_EXAMPLE, prelabel.check_map(prelabel.LABEL_MAP_EXAMPLE, m)), model,
                  [map_text, meaning], api_visibility="private")
    label_mode.change(lambda m: gr.update(visible=m == "csv"), label_mode, label_csv, api_visibility="private")
    model.change(handled(_methods_of), [model, method], method, api_visibility="private")
    model.change(prelabel.check_map, [map_text, model], meaning, api_visibility="private")
    ran = run.click(lambda: "", None, result, queue=False, api_visibility="private").then(  # no stale result
        _prelabel, [folder, upload, name, map_text, label_mode, label_csv, method, limit, overwrite, model, topn],
        result, api_name="prelabel")
    return model, ran, name


# --- Review -----------------------------------------------------------------------------------------

def _box_panel(state: dict) -> tuple[dict, dict]:
    """The side list of the shown image's boxes, and the label picker showing the selected box's label."""
    choices = review.box_choices(state)
    project = review.get_project(state["project"])
    return (gr.update(choices=choices, value=state.get("sel", 0) if choices else None),
            gr.update(choices=review.label_set(project), value=review.selected_label(state)))


def _review_outputs(state: dict) -> tuple:
    """(state, annotator, note, counts, position, box list, label picker, label keys, token) for the image at
    the state's position."""
    view = review.current(state)
    state = review.enter(state, view)
    project = review.get_project(state["project"])
    annot = image_annotator(value=view.annotator, label_list=review.label_choices(project)) if view.annotator else None
    return (state, annot, view.info, review.counts_line(view.counts), view.position, *_box_panel(state),
            review.key_labels(project), view.token)


def _boxes_changed(state: dict) -> tuple:
    """(state, annotator, box list, label picker) after an edit made on the server (relabel, delete, undo)."""
    return (state, review.annotator_value(state), *_box_panel(state))


@handled
def _open_review(name, order, status, request: gr.Request):
    return _review_outputs(review.open_queue(_projects(request), name, order, status))


@handled(keep=True)
def _requeue(state, order, status):
    """Order or Show changed while a project is open: its queue again, sorted and filtered so (the project the
    session opened, wherever a link listed under its name leads)."""
    if not (state and state.get("project")):
        return (gr.skip(),) * len(REVIEW_OUTPUTS)
    return _review_outputs(review.start(state["project"], order, status))


@handled(keep=True)
def _decide(state, annotated, drawn, action):
    """Decide on the image the canvas shows: `drawn` is the token of the photo the browser drew (KEYS_JS)."""
    if annotated is None:
        if action != "accept" and (state or {}).get("unreadable"):  # nothing to see: it can still be passed over
            return _review_outputs(review.decide(state, action))
        raise review.ProjectError("The canvas shows no image (not loaded yet, or unreadable: see the note): nothing "
                                  "was saved.")
    if asked := review.asks_first(review.need(state), action, annotated):
        gr.Warning(review.EMPTY_ACCEPT, duration=WARNING_SECONDS)
        return (asked, *(gr.skip(),) * (len(REVIEW_OUTPUTS) - 1))
    return _review_outputs(review.decide(state, action, annotated, drawn=drawn or ""))


@handled(keep=True)
def _move(state, step):
    return _review_outputs(review.move(review.need(state), step))


@handled(keep=True)
def _jump(state, target):
    return _review_outputs(review.jump(review.need(state), target))


@handled(keep=True)
def _undo_decision(state):
    return _review_outputs(review.undo_decision(review.need(state)))


@handled(keep=True)
def _edited(state, annotated):
    """The reviewer moved, resized, drew or deleted a box on the canvas: keep it (for undo and the side list)."""
    if not state or not state.get("ids"):
        return (gr.skip(),) * 4
    new, redraw = review.edited(state, annotated)
    if new is state and not redraw:  # nothing to keep: a late event must not put back the session it was sent with
        return (gr.skip(),) * 4  # (under load it arrives after a decision, whose undo it would forget)
    return (new, review.annotator_value(new) if redraw else gr.skip(), *_box_panel(new))


@handled(keep=True)
def _box_edit(state, edit, *args):
    """One box edit made in the side panel (relabel, label key, delete, undo) with the canvas's current boxes."""
    state = review.need(state)
    return _boxes_changed(edit(state, *args))


@handled(keep=True)
def _select_box(state, index):
    state = review.select(review.need(state), index)
    return state, _box_panel(state)[1]


@handled(keep=True)
def _export(state, formats, include_proposals, overwrite, workdir):
    """Write the chosen formats into the project's folder and offer each as a zip."""
    workdir = webapp.workdir(workdir)
    note, files = review.export(state, formats, include_proposals, overwrite, workdir, ACCESS.shared)
    return note, files, workdir


@handled(keep=True)
def _improve(state, progress=PROGRESS):
    """Learn from the accepted boxes and propose again for the images not reviewed yet; the queue is redrawn."""
    state, note = review.improve_proposals(state, prelabel.progress_steps(progress))
    return (*_review_outputs(state), note)


def _forget_review(state: dict | None) -> None:
    """When the browser session ends: delete its display copies."""
    webapp.remove_workdir((state or {}).get("display"))


SHORTCUTS_MD = "**Keys** · " + " · ".join(f"{k} {what}" for k, what in review.SHORTCUTS)


def review_tab() -> tuple[list, gr.Dropdown]:
    """The Review tab: one image at a time, accept / nudge / relabel / delete / add / skip / reject, undo, then
    export; every action has a key (SELECT_MODE_JS / KEYS_JS bind them).

    Returns its outputs (REVIEW_OUTPUTS), so other tabs can open an image here, and its project list."""
    state = gr.State(None, delete_callback=_forget_review)
    workdir = gr.State(None, delete_callback=webapp.remove_workdir)
    with gr.Row(equal_height=False):
        with gr.Column(scale=3, min_width=480):
            annotator = image_annotator(show_label=False, sources=[], show_clear_button=False,
                                        show_download_button=False, show_remove_button=True, image_type="filepath",
                                        box_min_size=4, boxes_alpha=0.15, height=620, elem_id="review-annotator")
            gr.Markdown("Drag a box to move it, its corners to resize it; the box tool (C) draws a new one, D goes "
                        "back to moving. " + SHORTCUTS_MD, elem_id="review-help")
        with gr.Column(scale=1, min_width=300):
            with gr.Row(equal_height=True):
                # the session's own list is checked by review.open_queue (allow_custom_value: not the build-time list)
                project = gr.Dropdown(review.list_projects(PROJECTS) if ACCESS.shared else [], value=None,
                                      show_label=False, scale=3, container=False, allow_custom_value=True,
                                      elem_id="review-project")
                refresh = gr.Button("↻", scale=0, min_width=40, size="sm")
                start = gr.Button("Open", variant="primary", scale=1, min_width=60, size="sm", elem_id="review-open")
            with gr.Accordion("Queue", open=False):
                order = gr.Radio(list(review.ORDERS), value="confidence", label="Order")
                status = gr.Radio(list(review.SHOWN), value="pending", label="Show")
            position = gr.Markdown(elem_id="review-position")
            counts = gr.Markdown(elem_id="review-counts")  # the progress, in view on a laptop's screen too
            note = gr.Markdown(elem_id="review-note")
            accept = gr.Button("✓ Accept boxes (Enter)", variant="primary", elem_id="review-accept")
            with gr.Row():
                reject = gr.Button("✗ Reject (R)", variant="stop", elem_id="review-reject", min_width=90)
                skip = gr.Button("Skip (S)", elem_id="review-skip", min_width=90)
            with gr.Row():
                prev = gr.Button("◀ Prev (←)", elem_id="review-prev", min_width=90)
                nxt = gr.Button("Next (→) ▶", elem_id="review-next", min_width=90)
            with gr.Row():
                undo_edit = gr.Button("↶ Undo edit (Z)", size="sm", elem_id="review-undo-edit", min_width=90)
                undo = gr.Button("↶ Undo decision (U)", size="sm", elem_id="review-undo", min_width=90)
            boxes = gr.Radio([], type="value", label="Boxes on this image (B: next)", elem_id="review-boxes")
            with gr.Row(equal_height=True):
                label = gr.Dropdown([], value=None, allow_custom_value=True, filterable=True, scale=3,
                                    label="Label of the selected box (type a new one)", elem_id="review-label")
                delete = gr.Button("Delete (Del)", size="sm", scale=1, min_width=70, elem_id="review-delete")
            keys = gr.Markdown(elem_id="review-keys")
            with gr.Row():
                target = gr.Textbox(placeholder="number or file name", show_label=False, scale=2,
                                    elem_id="review-jump")
                go = gr.Button("Go", scale=1, min_width=50)
            key = gr.Textbox(visible="hidden", elem_id="review-key")
            label_key = gr.Button("label key", visible="hidden", elem_id="review-labelkey")
            token = gr.Textbox(visible="hidden", elem_id="review-token")  # the image the panel describes
            drawn = gr.Textbox(visible="hidden", elem_id="review-drawn")  # the image the canvas drew
            redraw = gr.Button("redraw", visible="hidden", elem_id="review-redraw")
    with gr.Accordion("Improve the proposals", open=False):
        gr.Markdown("Learn from the boxes you accepted (3 images or more): the method's threshold and a box "
                    "correction that fit them best, then new proposals for every image not reviewed yet. "
                    "Your decisions are never touched.")
        improve = gr.Button("Improve the proposals", elem_id="review-improve")
        improved = gr.Markdown(elem_id="review-improved")
    with gr.Accordion("Export the project", open=False):
        with gr.Row():
            formats = gr.CheckboxGroup(list(review.FORMATS), value=[v for _, v in review.FORMATS], label="Formats")
            include = gr.Checkbox(False, label="Also export unreviewed proposals")
            overwrite = gr.Checkbox(False, label="Write into a folder that is not this project's export")
        export = gr.Button("Export", elem_id="review-export")
        exported = gr.Markdown()
        files = gr.File(label="Downloads", file_count="multiple", interactive=False)

    outputs = [state, annotator, note, counts, position, boxes, label, keys, token]
    edits = [state, annotator, boxes, label]
    select_mode = {"fn": None, "js": SELECT_MODE_JS}
    # one step at a time: each reads and writes the session, so an edit still running when a decision comes in
    # would otherwise put back the session it read, forgetting the decision (and its undo); each takes ~0.1 s
    step = {"concurrency_id": "review-step", "concurrency_limit": 1}
    refresh.click(_project_choices, project, project, api_visibility="private")
    start.click(_open_review, [project, order, status], outputs, api_name="review_open", **step).then(**select_mode)
    for choice in (order, status):
        choice.input(_requeue, [state, order, status], outputs, api_visibility="private", **step).then(**select_mode)
    seen = [state, annotator, drawn]
    accept.click(lambda s, a, d: _decide(s, a, d, "accept"), seen, outputs,
                 api_name="review_accept", **step).then(**select_mode)
    reject.click(lambda s, a, d: _decide(s, a, d, "reject"), seen, outputs,
                 api_visibility="private", **step).then(**select_mode)
    skip.click(lambda s, a, d: _decide(s, a, d, "skip"), seen, outputs,
               api_visibility="private", **step).then(**select_mode)
    redraw.click(lambda s: review.annotator_value(s) if s and s.get("image") else gr.skip(), state, annotator,
                 api_visibility="private")
    prev.click(lambda s: _move(s, -1), state, outputs, api_visibility="private", **step).then(**select_mode)
    nxt.click(lambda s: _move(s, 1), state, outputs, api_visibility="private", **step).then(**select_mode)
    for asked in (go.click, target.submit):
        asked(_jump, [state, target], outputs, api_visibility="private", **step).then(**select_mode)
    undo.click(_undo_decision, state, outputs, api_visibility="private", **step).then(**select_mode)
    annotator.change(_edited, [state, annotator], edits, api_visibility="private", trigger_mode="always_last",
                     show_progress="hidden", **step)
    boxes.input(_select_box, [state, boxes], [state, label], api_visibility="private", **step)
    label.input(lambda s, name: _box_edit(s, review.relabel, name), [state, label], edits,
                api_visibility="private", **step)
    label_key.click(lambda s, k: _box_edit(s, review.label_key, k), [state, key], edits, api_visibility="private",
                    **step)
    delete.click(lambda s: _box_edit(s, review.delete_box), state, edits, api_visibility="private", **step)
    undo_edit.click(lambda s: _box_edit(s, review.undo_edit), state, edits, api_visibility="private", **step)
    improve.click(_improve, state, [*outputs, improved], api_name="review_improve").then(**select_mode)
    export.click(_export, [state, formats, include, overwrite, workdir], [exported, files, workdir],
                 api_name="review_export")
    return outputs, project


# --- Dataset map ------------------------------------------------------------------------------------

@handled
def _map_source(choice: str, request: gr.Request) -> tuple[dict, dict]:
    """Show the upload box, or the list of the session's pre-labeling projects (the one worked on last chosen)."""
    up = choice == dataset_map.SOURCES[0]
    root = _projects(request)
    names = [] if up else review.list_projects(root)
    return gr.update(visible=up), gr.update(visible=not up, choices=names, value=None if up else review.newest_project(root))


def _map_default(choice: str, uploads, request: gr.Request) -> tuple:
    """The tab shown with nothing uploaded yet: the session's pre-labeling project worked on last, if any."""
    root = _projects(request)
    names = review.list_projects(root)
    if uploads or choice != dataset_map.SOURCES[0] or not names:
        return gr.skip(), gr.skip(), gr.skip()
    return (gr.update(value=dataset_map.SOURCES[1]), gr.update(visible=False),
            gr.update(visible=True, choices=names, value=review.newest_project(root)))


def _map_model(project: str | None, current: str, request: gr.Request) -> dict:
    """The model the chosen project was pre-labeled with, where this session may use it: its frames then show the
    project's own labels."""
    used = dataset_map.project_model(_projects(request), project)
    offered = [value for _, value in train.model_choices(ACCESS, _session(request))]
    return gr.update(value=used if used in offered else current)


@handled
def _make_map(choice, uploads, project, model_name, limit, workdir, request: gr.Request, progress=MAP_PROGRESS):
    """Features, t-SNE, the picture and the scatter for the uploaded images or a pre-labeling project."""
    workdir = webapp.workdir(workdir)
    progress(0, desc="Features…")
    view = dataset_map.make_map(choice, uploads, _projects(request), project, model_name, limit, workdir)
    scatter = gr.ScatterPlot(view.table, x="x", y="y", color="group", color_map=view.colours,
                             tooltip=["image", "name", "label", "probability"])
    linked = bool(view.state["project"])
    return (str(view.picture), scatter, view.summary, view.state, gr.update(value=str(view.picture), interactive=True),
            gr.update(value=str(view.csv), interactive=True), workdir, [], [], gr.update(visible=linked))


REVIEW_OUTPUTS = ("state", "annotator", "note", "counts", "position", "boxes", "label", "keys", "token")
"""What the Review tab's components show (_review_outputs), in that order."""


@handled
def _show_point(state: dict | None, index: int | None, session: dict | None, linked: bool) -> tuple:
    """The photo behind a point and its label; for a pre-labeling project, the review queue moves to that image."""
    keep = (gr.skip(),) * (len(REVIEW_OUTPUTS) if linked else 0)
    if not state or index is None:
        return (gr.skip(), "Click on a thumbnail.", *keep)
    photo, about = dataset_map.show_point(state, index)
    folder = state["project"]
    if linked and folder:
        try:
            moved = dataset_map.review_at(folder, state["map"].paths[index], session)
            return (photo, about + " · opened in the **Review** tab", *_review_outputs(moved))
        except UserError as exc:
            about += f" · {html.escape(one_line(exc))}"
    return (photo, about, *keep)


def dataset_map_tab(review_outputs: list | None = None, tabs: gr.Tabs | None = None,
                    page: gr.Tab | None = None) -> gr.Dropdown:
    """The Dataset map tab: a t-SNE picture of a collection, and a scatter to explore it. Returns its model list.
    With its `page`, showing the tab offers the project worked on last.

    With the Review tab's outputs (its state, annotator, note, counts, position) and the app's Tabs, clicking an
    image of a pre-labeling project also opens it in the review queue."""
    linked = review_outputs is not None
    map_state = gr.State(None)  # see dataset_map.MapView.state
    workdir = gr.State(None, delete_callback=webapp.remove_workdir)
    band = gr.State([])  # indices of the images shown in the band gallery
    gr.Markdown("Where each image sits among the others, as the classifier sees them: its penultimate-layer "
                "features, PCA to 50 dimensions, then t-SNE. Similar images gather; frames show the predicted "
                "class (or the project's own label).")
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=280):
            source = gr.Radio(dataset_map.SOURCES, value=dataset_map.SOURCES[0], label="Images", elem_id="map-source")
            uploads = gr.File(label="A folder, some images, or a zip", file_count="multiple", height=160,
                              file_types=["image", ".zip"], type="filepath", elem_id="map-upload")
            project = gr.Dropdown([], label="Pre-labeling project", visible=False, allow_custom_value=True,
                                  elem_id="map-project")
            model = gr.Dropdown(train.model_choices(ACCESS, None), value=DEFAULT_MODEL, label="Model",
                                elem_id="map-model")
            limit = gr.Slider(3, 2000, value=1000, step=1, label="At most this many images")
            make = gr.Button("Make the map", variant="primary", elem_id="map-button")
            summary = gr.Markdown(elem_id="map-summary")
            with gr.Row():
                png_file = gr.DownloadButton("Map PNG", interactive=False)
                csv_file = gr.DownloadButton("Coordinates CSV", interactive=False)
        with gr.Column(scale=3, min_width=480):
            picture = gr.Image(label="Map (click a thumbnail)", interactive=False, height=620, type="filepath",
                               elem_id="map-picture")
    with gr.Row(equal_height=False):
        with gr.Column(scale=3, min_width=420):
            scatter = gr.ScatterPlot(x="x", y="y", color="group", show_label=True,
                                     label="Scatter (hover: the image and its label; drag across x to list a band)",
                                     elem_id="map-scatter")
            gallery = gr.Gallery(label="Images in the brushed band", columns=8, height=200, allow_preview=False)
        with gr.Column(scale=2, min_width=300):
            photo = gr.Image(label="Image", interactive=False, height=320, elem_id="map-photo")
            about = gr.Markdown(elem_id="map-about")
            to_review = gr.Button("Go to the Review tab", visible=False, elem_id="map-to-review")
    session = [review_outputs[0]] if linked else []
    shown = [photo, about, *(review_outputs or [])]

    def click_map(state, sess, evt: gr.SelectData):
        return _show_point(state, dataset_map.point_at(state, evt.index[0], evt.index[1]), sess, linked)

    def brush(state, evt: gr.SelectData):
        """The images in the x band brushed on the scatter, as a gallery."""
        if not isinstance(evt.index, (list, tuple)) or len(evt.index) != 2:
            return [], []
        return dataset_map.band(state, float(evt.index[0]), float(evt.index[1]))

    def pick_in_band(state, picked, sess, evt: gr.SelectData):
        return _show_point(state, picked[evt.index] if evt.index < len(picked) else None, sess, linked)

    source.change(_map_source, source, [uploads, project], api_visibility="private")
    if page is not None:
        page.select(_map_default, [source, uploads], [source, uploads, project], api_visibility="private")
    project.change(_map_model, [project, model], model, api_visibility="private")
    make.click(_make_map, [source, uploads, project, model, limit, workdir],
               [picture, scatter, summary, map_state, png_file, csv_file, workdir, gallery, band, to_review],
               api_name="dataset_map")
    picture.select(click_map, [map_state, *session], shown, api_visibility="private")
    scatter.select(brush, map_state, [gallery, band], api_visibility="private")
    gallery.select(pick_in_band, [map_state, band, *session], shown, api_visibility="private")
    if tabs is not None:
        to_review.click(lambda: gr.Tabs(selected="review"), None, tabs, api_visibility="private")
    return model


# --- Train ------------------------------------------------------------------------------------------

def _session(request: gr.Request | None) -> str | None:
    return request.session_hash if request else None


@handled
def _model_lists(localize_model: str, prelabel_model: str, map_model: str, request: gr.Request) -> list[dict]:
    """Every model list with this session's choices (the registry, models/, and models trained in this tab)."""
    choices = train.model_choices(ACCESS, _session(request))
    names = [v for _, v in choices]
    return [gr.update(choices=choices, value=v if v in names else DEFAULT_MODEL)
            for v in (localize_model, prelabel_model, map_model)]


@handled
def _train(upload, folder, name, epochs, wsddn, tune_blocks, request: gr.Request, progress=PROGRESS):
    """Train a model on the zip (or allowed server folder) into this session's models; its note and plot."""
    progress(0, desc="Reading the photos…")
    view = train.run(ACCESS, _session(request), upload, folder, name, epochs, wsddn, tune_blocks,
                     progress=train.progress_steps(progress, int(epochs or 1)))
    return view.note, gr.LinePlot(view.history, sort=list(view.history.epoch.unique()))  # epochs in order, not as text


def train_tab():
    """The Train tab: a folder per class in, a model for the user's own classes out. Returns its training
    event (the model lists are refreshed when it succeeds)."""
    where = ("It is written to `models/NAME` on this server" if ACCESS.shared else
             "It belongs to this browser tab and is deleted when the tab is closed or reloaded")
    gr.Markdown("Teach fol your own classes from image labels alone: a zip with a folder per class (photos "
                "holding none of them in `background/` or `none/`, at least 3 photos per class). The classifier's "
                "head and the backbone's last stage are fine-tuned; its heatmaps (CAM) then give the boxes. "
                f"{where}; then pick it as the Model in Localize, Pre-label or Dataset map.")
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=320):
            folder = gr.Textbox(label=f"Folder on this server, in {getattr(ACCESS.folders, 'name', '')}/ "
                                      "(a subfolder per class)", placeholder="photos",
                                visible=ACCESS.folders is not None, elem_id="train-folder")
            upload = gr.File(label=("…or u" if ACCESS.folders else "U") + "pload a zip with a folder per class",
                             file_types=[".zip"],
                             type="filepath", height=130, elem_id="train-zip")
            name = gr.Textbox("my-model", label="Model name", elem_id="train-name")
            epochs = gr.Slider(1, train.MAX_EPOCHS, value=train.DEFAULT_EPOCHS, step=1,
                               label="At most this many epochs (stops earlier when the held-out loss stops falling)")
            tune_blocks = gr.Slider(0, train.MAX_TUNE_BLOCKS, value=train.DEFAULT_TUNE_BLOCKS, step=1,
                                    label="Fine-tune the backbone's last stages too (0: the head only: faster, "
                                          "boxes a little worse)")
            wsddn = gr.Checkbox(False, label="Also train WSDDN (several boxes per class; slower)")
            run = gr.Button("Train", variant="primary", elem_id="train-button")
        with gr.Column(scale=2, min_width=420):
            result = gr.Markdown(elem_id="train-result")
            plot = gr.LinePlot(x="epoch", y="value", color="series", label="Loss and accuracy per epoch",
                               elem_id="train-plot")
    return run.click(lambda: ("", None), None, [result, plot], queue=False, api_visibility="private").then(
        _train, [upload, folder, name, epochs, wsddn, tune_blocks], [result, plot], api_name="train",
        concurrency_limit=1)  # the last run's result goes first: a failed run must not seem to have made it


HEADER = """# fol: find objects in photos with an ImageNet classifier alone
No box labels, no detector: a classifier trained on ImageNet's 1000 classes says *what* is in the photo,
and its own gradients say *where*. See why, nudge the boxes, export them as Pascal VOC or COCO."""

HOW_IT_WORKS = """
**Multi-scale CAM** (the default, the best boxes we measured): the class heatmap of the last
convolutional layer, computed with the photo at three sizes (short side 224, 320 and 448 px, its own
shape kept) and averaged. The network's own finer features then carry it over the pixels that look like
the ones it lights (the rest of the object, not just its most telling part), weight it by how much each
pixel looks like an object at all (a small probe fit without a single box) and fade what lies across the
photo's main divide (a normalized cut). Kept above a quarter of its maximum; one box per region, the
largest first. A model trained in the Train tab keeps the plain averaged map, cut at a tenth of its maximum.

**FOL** (*Fast Unsupervised Object Localization*, Dwaraknath, Menghani and Mongia):
one forward pass classifies the photo. For the chosen class, the neurons of a convolutional layer are
ranked by activation × gradient of the class score; the best *kmax* are guided-backpropagated to the
pixels, each map is thresholded at a percentile into a blob, the classifier re-scores the photo masked
by each blob, and the box goes around the union of the *k* best blobs (Algorithm 1).

**Grad-CAM** (Selvaraju et al., ICCV 2017) weights the last convolutional feature maps by the mean
gradient of the class score; **CAM** (Zhou et al., CVPR 2016) weights them by the classifier's own
weights. Each heatmap is thresholded and a box is drawn around each region.

**WSDDN / OICR** (Bilen and Vedaldi, CVPR 2016; Tang et al., CVPR 2017), offered once a model trained in the
Train tab is chosen: the regions of its multi-scale class map first, then more candidate regions cut from its
heatmaps at several thresholds, ranked by how much of the class's heat they hold for their size (a model
trained with the WSDDN option can rank them by its region classifiers too); several boxes per class.

**Which classes**: the top-1 class; the top-N (the paper's Algorithm 2, for every method: the top class
and each next one whose probability is at least a quarter of the top one's); or the classes you name,
even when the classifier does not rank them first ("the pig among the dogs").

FOL, Grad-CAM and CAM see the photo at the model's resolution (224 × 224, stretched, no crop); every
box is mapped back to the photo's own pixels, in which the exports are written. The photo goes to this
app's server only, where the model runs on the CPU: no other service sees it.
"""

CSS = """
#summary { min-height: 2.5em; }
/* the annotator's rotate buttons store rotated boxes against the unrotated photo: rotation is not offered */
button[aria-label^="Rotate"] { display: none !important; }
#review-help, #review-keys { font-size: 0.85em; }
#review-note p { margin: 0; }
#example-note p { margin: 0; font-size: 0.9em; }
/* on a phone the why figure (a row of tiles of about 160 px per class) is shown at its own size and scrolls sideways,
   rather than shrunk to the screen's width (the box table scrolls sideways on its own) */
@media (max-width: 640px) {
  #why { height: auto !important; overflow-x: auto !important; }
  #why .image-container, #why .image-frame, #why .image-container > button { width: max-content; height: auto; }
  #why img { width: auto !important; height: auto !important; max-width: none !important; max-height: none !important; }
}
"""

HOLDS_WORK_JS = "() => { window.folHoldsWork = true; }"
"""Run when this tab made a project or a model that is deleted with its session (not on a shared run)."""

SELECT_MODE_JS = """() => {
  if (document.activeElement && document.activeElement.tagName === "BUTTON") document.activeElement.blur();
  setTimeout(() => document.querySelectorAll('button[aria-label="Drag boxes"]').forEach(
    (b) => { if (!b.classList.contains("selected")) b.click(); }), 50);
  if (window.folCatchUp) window.folCatchUp(0);
}"""
"""Put every annotator in select/move mode (it starts in "create box" on an image without boxes, where
dragging a corner handle draws a new box), let go of the button just pressed (so that Enter accepts
rather than pressing it again), and make sure the Review canvas draws the new photo: run after each new image."""

KEYS_JS = """<script>
(() => {
  // A browser session's own projects and models go when its tab closes (a public server): ask first, once any
  // were made (HOLDS_WORK_JS), so that a reload by mistake does not lose a visitor's reviewing.
  window.addEventListener("beforeunload", (e) => {
    if (window.folHoldsWork) { e.preventDefault(); e.returnValue = "leave"; }  // the text is the browser's own
  });
  // Which review photo the canvas drew: display copies are named by token (review.image_token); the annotator
  // loads each into a new Image, so the last one requested that has loaded is the one on the canvas.
  const src = Object.getOwnPropertyDescriptor(HTMLImageElement.prototype, "src");
  Object.defineProperty(HTMLImageElement.prototype, "src", {...src, set(value) {
    const m = /\\/([0-9a-f]{8}-[0-9]+)\\.jpe?g$/.exec(String(value));
    if (m) {
      window.folRequested = m[1];
      this.addEventListener("load", () => { if (window.folRequested === m[1]) window.folDrawn = m[1]; },
                            {once: true});
    }
    src.set.call(this, value);
  }});
  const field = (id) => document.querySelector(`#${id} textarea, #${id} input`);
  const put = (id, value) => { const f = field(id); f.value = value; f.dispatchEvent(new Event("input", {bubbles: true})); };
  // The annotator sometimes keeps drawing the previous photo (its image url arrives after its value):
  // hand it its value again until it draws the photo the panel describes.
  window.folCatchUp = (tries) => setTimeout(() => {
    const want = field("review-token") && field("review-token").value;
    if (!want || window.folDrawn === want || tries > 4) return;
    document.getElementById("review-redraw").click();
    window.folCatchUp(tries + 1);
  }, 400 + 300 * tries);
  // every decision says which photo the canvas drew; the server refuses it for any other. A review button
  // lets go of the focus once pressed, so that Enter then accepts instead of pressing it again.
  document.addEventListener("click", (e) => {
    if (!e.target.closest) return;
    if (e.target.closest("#review-accept, #review-reject, #review-skip")) put("review-drawn", window.folDrawn || "");
    const button = e.target.closest("button[id^=review-]");
    if (button) setTimeout(() => button.blur(), 0);
  }, true);
  // the annotator's label dialog for a box just drawn opens without the focus: give it to its label field,
  // so that typing a label and Enter work without the mouse
  new MutationObserver(() => {
    const dialog = document.getElementById("model-box-edit");
    if (!dialog || dialog.dataset.folFocused) return;
    dialog.dataset.folFocused = "1";
    setTimeout(() => {
      const input = dialog.querySelector("input");
      if (input && document.activeElement !== input) { input.focus(); input.select(); }
    }, 50);
  }).observe(document.body, {childList: true, subtree: true});
  const BUTTONS = {enter: "review-accept", a: "review-accept", r: "review-reject", s: "review-skip",
    arrowright: "review-next", n: "review-next", arrowleft: "review-prev", p: "review-prev",
    z: "review-undo-edit", u: "review-undo", delete: "review-delete", backspace: "review-delete"};
  // a radio button or checkbox clicked last (the Queue panel's) keeps the focus but takes no typing
  const typing = (el) => el && (el.isContentEditable || ["TEXTAREA", "SELECT"].includes(el.tagName)
    || (el.tagName === "INPUT" && !["radio", "checkbox", "button", "range"].includes(el.type)));
  document.addEventListener("keydown", (e) => {
    if (e.defaultPrevented || e.ctrlKey || e.metaKey || e.altKey || typing(e.target)) return;
    const accept = document.getElementById("review-accept");
    if (!accept || !accept.offsetParent || document.getElementById("model-box-edit")) return;
    const key = e.key.toLowerCase();
    if ((key === "enter" || key === " ") && e.target.tagName === "BUTTON") return;
    let id = BUTTONS[key];
    if (/^[1-9]$/.test(key)) {
      put("review-key", key);
      id = "review-labelkey";
    } else if (key === "b") {
      const radios = [...document.querySelectorAll("#review-boxes input[type=radio]")];
      if (radios.length) {
        const at = radios.findIndex((r) => r.checked);
        radios[(at + (e.shiftKey ? -1 : 1) + radios.length) % radios.length].click();
      }
      // the side list's box is now the selected one: Delete must reach this handler, not the canvas's own,
      // which deletes the box selected on the canvas (none, often) when the canvas has the focus
      const focused = document.activeElement;
      if (focused && focused.closest && focused.closest("#review-annotator")) focused.blur();
      e.preventDefault();
      return;
    } else if (key === "c" || key === "d") {  // the annotator's own keys, which it takes only when focused
      const tool = document.querySelector(
        `#review-annotator button[aria-label^="${key === "c" ? "Create box" : "Drag boxes"}"]`);
      if (tool) { e.preventDefault(); tool.click(); }
      return;
    }
    if (!id) return;
    e.preventDefault();
    document.getElementById(id).click();
  });
})();
</script>"""
"""The Review tab's keyboard shortcuts (review.SHORTCUTS): each clicks its button; keys typed into a text box
or the annotator's label dialog are left alone. Also the question before leaving a tab whose work would go with it."""


def build_app() -> gr.Blocks:
    """The whole app; each tab is one function so tabs can be added independently."""
    # uploads and results in Gradio's cache are deleted a day after they were made (checked hourly)
    with gr.Blocks(title="fol: find objects with a classifier", delete_cache=(3600, 86400)) as demo:
        gr.Markdown(HEADER)
        with gr.Tabs() as tabs:
            with gr.Tab("Localize"):
                models = [localize_tab()]
            with gr.Tab("Pre-label"):
                model, prelabeled, name = prelabel_tab()
                models.append(model)
            with gr.Tab("Review", id="review") as review_page:
                review_outputs, projects = review_tab()
            with gr.Tab("Dataset map") as map_page:
                models.append(dataset_map_tab(review_outputs, tabs, map_page))
            with gr.Tab("Train"):
                trained = train_tab()
        trained.success(_model_lists, models, models, api_visibility="private")
        prelabeled.success(_prelabeled, name, projects, api_visibility="private")
        if not ACCESS.shared:  # the tab's projects and models go with it: ask before leaving
            for made in (prelabeled, trained):
                made.success(None, js=HOLDS_WORK_JS)
        review_page.select(_project_choices, projects, projects, api_visibility="private")
        demo.load(_model_lists, models, models, api_visibility="private")
        with gr.Accordion("How it works", open=False):
            gr.Markdown(HOW_IT_WORKS)
        demo.unload(_end_session)
    return demo


def serve(host: str = "127.0.0.1", port: int = 7860, allow_folders: str | Path | None = None,
          shared_projects: bool | None = None, **launch_args) -> gr.Blocks:
    """Load the shared model once, then serve the app with a queue (a few requests at a time).

    allow_folders: the one server folder visitors may pre-label from (None: uploads only). shared_projects:
    every session sees exports/ (None: only when bound to this machine and not on a Space), else each
    browser session has its own projects, removed when it ends."""
    global ACCESS
    shared = webapp.is_shared_by_default(host, os.environ.get("SPACE_ID")) if shared_projects is None \
        else shared_projects
    ACCESS = webapp.Access(PROJECTS, shared, Path(allow_folders).resolve() if allow_folders else None)
    load_model()
    demo = build_app()
    demo.queue(default_concurrency_limit=2)
    launch_args.setdefault("max_file_size", None if shared else PUBLIC_MAX_UPLOAD)
    demo.launch(server_name=host, server_port=port, theme=gr.themes.Soft(), css=CSS, head=KEYS_JS,
                allowed_paths=[str(EXAMPLES)], **launch_args)
    return demo


def main() -> None:
    """Serve the app; host and port from flags or GRADIO_SERVER_NAME / GRADIO_SERVER_PORT."""
    parser = argparse.ArgumentParser(description="fol's web app")
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
                        help="default: $GRADIO_SERVER_NAME or %(default)s")
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
                        help="default: $GRADIO_SERVER_PORT or %(default)s")
    parser.add_argument("--allow-folders", metavar="ROOT", default=None,
                        help="let visitors pre-label folders inside ROOT on this server (default: uploaded zips only)")
    parser.add_argument("--shared-projects", action=argparse.BooleanOptionalAction, default=None,
                        help="every browser session sees the projects in exports/ (default: yes when bound to "
                             "127.0.0.1 outside a Space; otherwise each session has its own, deleted when it ends)")
    args = parser.parse_args()
    if args.allow_folders and not Path(args.allow_folders).is_dir():
        parser.error(f"--allow-folders {args.allow_folders}: no such folder")
    serve(args.host, args.port, args.allow_folders, args.shared_projects)


if __name__ == "__main__":
    main()
