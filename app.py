"""fol's web app: localize a photo, see why, accept or nudge the boxes, export them.

Wiring only: every computation lives in fol_core (fol_core.webapp holds the functions called here).
"""

from __future__ import annotations

import argparse
import html
import os
from pathlib import Path

import gradio as gr
from gradio_image_annotation import image_annotator

from fol_core import tsne, webapp
from fol_core.bootstrap import export as bootstrap_export
from fol_core.bootstrap import review
from fol_core.bootstrap.labelmap import LabelMap
from fol_core.bootstrap.prelabel import prelabel_folder
from fol_core.images import IMAGE_SUFFIXES
from fol_core.models import DEFAULT_MODEL, ModelUnavailableError, list_models, load_model

EXAMPLES = Path(__file__).resolve().parent / "examples"
EXAMPLE_PHOTOS = sorted(str(p) for p in EXAMPLES.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
EXAMPLE_EXTENSIONS = ["image", ".webp", ".tif", ".tiff", ".bmp"]
PROGRESS = gr.Progress()  # gradio gives each call its own tracker through this default


def _user_error(exc: Exception) -> gr.Error:
    """A one-line message in the UI instead of a traceback."""
    return gr.Error(html.escape(str(exc)), title="Cannot do that", print_exception=False)


def _preview(path: str | None) -> dict:
    """The uploaded photo's display copy, shown only while there is one."""
    if not path:
        return gr.update(value=None, visible=False)
    try:
        return gr.update(value=webapp.open_photo(path)[1], visible=True)
    except webapp.USER_ERRORS as exc:
        gr.Warning(html.escape(str(exc)), title="Not a usable photo")
        return gr.update(value=None, visible=False)


def _pick_example(evt: gr.SelectData) -> str:
    return EXAMPLE_PHOTOS[evt.index]


def _on_model(model_name: str, method: str) -> tuple[str, str]:
    try:
        load_model(model_name)
    except ModelUnavailableError as exc:
        gr.Warning(str(exc), title=f"{model_name} is not available")
        return f"⚠️ {exc}", webapp.default_layer(model_name, method)
    return "", webapp.default_layer(model_name, method)


def _on_method(model_name: str, method: str) -> tuple[str, dict, dict]:
    fol = method == "fol"
    return webapp.default_layer(model_name, method), gr.update(visible=fol), gr.update(visible=not fol)


def _on_class_mode(mode: str) -> tuple[dict, dict]:
    return gr.update(visible=mode == "topn"), gr.update(visible=mode == "named")


def _localize(path, model_name, method, class_mode, topn, named, k, kmax, percentile, layer, threshold, otsu,
              progress=PROGRESS):
    """Localize, show why, and open the boxes in the annotator."""
    progress(0.1, desc="Localizing…")
    try:
        params = webapp.method_params(method, k, kmax, percentile, layer, threshold, otsu)
        view = webapp.run_localize(path, model_name, method, class_mode, topn, named, params)
    except webapp.USER_ERRORS as exc:
        raise _user_error(exc) from None
    progress(1.0, desc="Drawing…")
    return (
        view.boxed, view.why, view.top5, view.summary,
        image_annotator(value=view.annotator, label_list=view.labels, label_colors=view.label_colors),
        view.photo, webapp.box_table(view.photo.boxes),
        gr.update(value=None, interactive=False), gr.update(value=None, interactive=False),
    )


def _accept(annotated, photo, export_dir):
    """The boxes as the user left them, in the photo's pixels, written as VOC and COCO for download."""
    if photo is None or not annotated:
        raise _user_error(webapp.InputError("Localize a photo first, then accept its boxes."))
    boxes = photo.from_annotator(annotated.get("boxes") or [])
    export_dir = export_dir or webapp.new_export_dir()
    voc_path, coco_path = webapp.export_files(photo, boxes, export_dir)
    gr.Info(f"Accepted {len(boxes)} box{'es' if len(boxes) != 1 else ''}: the downloads are ready.")
    return (webapp.box_table(boxes), gr.update(value=str(voc_path), interactive=True),
            gr.update(value=str(coco_path), interactive=True), export_dir)


def localize_tab() -> None:
    """The Localize tab: one photo in; boxes, why, editable boxes and exports out."""
    photo_state = gr.State(None)  # webapp.Photo of this user's last run
    export_dir = gr.State(None, delete_callback=webapp.remove_export_dir)
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=320):
            photo = gr.File(label="1 · Photo (JPEG, PNG, WebP, TIFF…)", file_types=EXAMPLE_EXTENSIONS,
                            type="filepath", elem_id="photo-file")
            preview = gr.Image(label="Photo", interactive=False, height=220, show_label=False, visible=False,
                               elem_id="photo-preview")
            examples = gr.Gallery(EXAMPLE_PHOTOS, label="…or pick an example", columns=4, height=110,
                                  allow_preview=False, elem_id="example-gallery")
            model = gr.Dropdown(list_models(), value=DEFAULT_MODEL, label="Model")
            model_note = gr.Markdown()
            method = gr.Radio(webapp.METHOD_CHOICES, value="fol", label="Method")
            class_mode = gr.Radio(webapp.CLASS_MODES, value="top1", label="Which classes")
            topn = gr.Slider(2, 10, value=3, step=1, label="N: up to this many classes", visible=False)
            named = gr.Dropdown(webapp.class_choices(), multiselect=True, filterable=True, visible=False,
                                label="ImageNet classes (type to search)", elem_id="named-classes")
            with gr.Accordion("Advanced", open=False):
                layer = gr.Textbox(webapp.default_layer(DEFAULT_MODEL, "fol"), label="Layer (module path)")
                with gr.Group(visible=True) as fol_params:
                    k = gr.Slider(1, 20, value=webapp.FOL_DEFAULTS["k"], step=1, label="k: blobs in the union")
                    kmax = gr.Slider(1, 40, value=webapp.FOL_DEFAULTS["kmax"], step=1, label="kmax: neurons ranked")
                    percentile = gr.Slider(50, 99, value=webapp.FOL_DEFAULTS["percentile"], step=1,
                                           label="Percentile: a neuron's map is kept above this")
                with gr.Group(visible=False) as cam_params:
                    threshold = gr.Slider(0.0, 0.95, value=webapp.THRESHOLD_DEFAULT, step=0.05,
                                          label="Threshold: fraction of the heatmap's maximum")
                    otsu = gr.Checkbox(False, label="Use Otsu's threshold instead")
            run = gr.Button("Localize", variant="primary", elem_id="localize-button")
        with gr.Column(scale=3, min_width=420):
            summary = gr.Markdown("Upload a photo or pick an example, then press **Localize**.", elem_id="summary")
            with gr.Row(equal_height=False):
                boxed = gr.Image(label="2 · Boxes", show_label=False, interactive=False, scale=3, height=400,
                                 elem_id="boxed")
                top5 = gr.Label(label="Top-5 classes", num_top_classes=5, scale=2, min_width=200)
    gr.Markdown("### Why: the evidence behind each box\nFOL: the photo, the chosen neurons' guided-backprop maps "
                "(p = the class probability on the photo masked by that neuron's blob), their union, the box "
                "(the paper's Figure 3). Grad-CAM / CAM: the class heatmap over the photo.")
    why = gr.Image(label="Why", show_label=False, interactive=False, format="png", height=340, elem_id="why")
    gr.Markdown("### 3 · Accept or nudge the boxes\nDrag a box to move it, drag its corners to resize it, "
                "double-click it to relabel or delete it, or draw a new one with the box tool. Then press "
                "**Accept** and download the boxes.")
    with gr.Row(equal_height=False):
        with gr.Column(scale=3, min_width=420):
            annotator = image_annotator(label="Editable boxes", sources=[], show_clear_button=False,
                                        show_download_button=False, show_remove_button=True, image_type="filepath",
                                        box_min_size=4, boxes_alpha=0.15, elem_id="annotator")
        with gr.Column(scale=2, min_width=300):
            accept = gr.Button("Accept boxes", variant="primary", elem_id="accept-button")
            table = gr.Dataframe(headers=webapp.BOX_TABLE_HEADERS, label="Boxes in the photo's pixels",
                                 interactive=False, wrap=True)
            with gr.Row():
                voc_file = gr.DownloadButton("Pascal VOC XML", interactive=False, elem_id="download-voc")
                coco_file = gr.DownloadButton("COCO JSON", interactive=False, elem_id="download-coco")

    photo.change(_preview, photo, preview, api_visibility="private")
    examples.select(_pick_example, None, photo, api_visibility="private")
    model.change(_on_model, [model, method], [model_note, layer], api_visibility="private")
    method.change(_on_method, [model, method], [layer, fol_params, cam_params], api_visibility="private")
    class_mode.change(_on_class_mode, class_mode, [topn, named], api_visibility="private")
    run.click(
        _localize,
        [photo, model, method, class_mode, topn, named, k, kmax, percentile, layer, threshold, otsu],
        [boxed, why, top5, summary, annotator, photo_state, table, voc_file, coco_file],
        api_name="localize",
    )
    accept.click(_accept, [annotator, photo_state, export_dir], [table, voc_file, coco_file, export_dir],
                 api_name="accept")


PROJECTS = Path(__file__).resolve().parent / "exports"
"""Where the Pre-label tab makes projects (exports/NAME) and the Review tab finds them."""
LABEL_MAP_EXAMPLE = """labels:
  dog: [dog]              # a WordNet group: every dog breed
  cat: [domestic cat]     # tabby, tiger cat, Persian, Siamese, Egyptian cat
  cup: [cup, coffee mug, espresso]
threshold: 0.1            # below this score: "no object found"
"""


def _check_map(text: str) -> str:
    """What each label of the map means, or why it cannot be used."""
    if not (text or "").strip():
        return "No map: each image gets the ImageNet class names."
    try:
        lm = LabelMap.parse(text)
    except review.USER_ERRORS as exc:
        return f"⚠️ {html.escape(str(exc))}"
    return "\n".join(f"- {html.escape(line)}" for line in lm.describe()) + f"\n\nthreshold: {lm.threshold}"


def _project_choices(value: str | None = None) -> dict:
    names = review.list_projects(PROJECTS)
    return gr.update(choices=names, value=value if value in names else None)


def _prelabel(folder, upload, name, map_text, label_mode, label_csv, method, limit, overwrite, progress=PROGRESS):
    """Pre-label a folder or an uploaded zip into exports/NAME, resuming what is there."""
    source = upload or (folder or "").strip()
    if not source:
        raise _user_error(review.ProjectError("Give a folder on this server, or upload a zip of images."))
    image_labels = {"folders": "folders", "csv": label_csv}.get(label_mode)
    if label_mode == "csv" and not label_csv:
        raise _user_error(review.ProjectError("Upload the CSV of image-level labels (columns image, label)."))

    def step(done: int, total: int, key: str) -> None:
        progress((done, total), desc=f"Pre-labeling {key}" if key else "Pre-labeling", unit="images")

    try:
        out = review.project_folder(PROJECTS, name)
        project, summary, new = prelabel_folder(source, out, map_text, image_labels, method, int(limit or 0) or None,
                                                bool(overwrite), progress=step)
    except review.USER_ERRORS as exc:
        raise _user_error(exc) from None
    review.forget(out)
    errors = "".join(f"\n- {html.escape(e)}" for e in summary.errors[:10])
    note = (f"**{project.name}**: {new} new images; {summary.line()}{errors}\n\n"
            f"{review.counts_line(project.counts())}. Open the **Review** tab (↻, then Open) to check the boxes.")
    return note


def prelabel_tab() -> None:
    """The Pre-label tab: a folder or zip in, a resumable review project out."""
    gr.Markdown("Propose boxes for a whole image set. The project lives in `exports/NAME` on this server; run it "
                "again to carry on where it stopped (nothing is redone).")
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=320):
            folder = gr.Textbox(label="Folder of images on this server (searched recursively)",
                                placeholder="/data/photos, a saved dataset folder, hf:DIR or hf:OWNER/NAME",
                                elem_id="prelabel-folder")
            upload = gr.File(label="…or upload a zip of images", file_types=[".zip"], type="filepath", height=130,
                             elem_id="prelabel-zip")
            name = gr.Textbox("my-project", label="Project name (exports/NAME)", elem_id="prelabel-name")
            label_mode = gr.Radio([("None", "none"), ("Folder names", "folders"), ("A CSV (image, label)", "csv")],
                                  value="none", label="Image-level labels (narrow the class to localize)")
            label_csv = gr.File(label="CSV of image-level labels", file_types=[".csv"], type="filepath", height=130,
                                visible=False)
            method = gr.Radio(webapp.METHOD_CHOICES, value="fol", label="Method", elem_id="prelabel-method")
            limit = gr.Number(0, precision=0, minimum=0, label="At most this many images now (0: all)")
            overwrite = gr.Checkbox(False, label="Start the project again if it holds another source (asks nothing more)")
            run = gr.Button("Pre-label", variant="primary", elem_id="prelabel-button")
        with gr.Column(scale=1, min_width=320):
            map_text = gr.Code("", language="yaml", interactive=True, elem_id="label-map",
                               label="Label map (YAML or JSON; empty: the project's map, else ImageNet's class names)")
            with gr.Row():
                example = gr.Button("Insert an example map")
                check = gr.Button("Check the map")
            meaning = gr.Markdown(_check_map(""))
    result = gr.Markdown(elem_id="prelabel-result")
    check.click(_check_map, map_text, meaning, api_visibility="private")
    example.click(lambda: (LABEL_MAP_EXAMPLE, _check_map(LABEL_MAP_EXAMPLE)), None, [map_text, meaning],
                  api_visibility="private")
    label_mode.change(lambda m: gr.update(visible=m == "csv"), label_mode, label_csv, api_visibility="private")
    run.click(_prelabel, [folder, upload, name, map_text, label_mode, label_csv, method, limit, overwrite],
              result, api_name="prelabel")


def _review_outputs(state: dict) -> tuple:
    """(state, annotator, note, counts, position) for the image at the state's position."""
    view = review.current(state)
    labels = review.label_choices(review.get_project(state["project"]))
    annot = image_annotator(value=view.annotator, label_list=labels) if view.annotator else None
    return state, annot, view.info, review.counts_line(view.counts), view.position


def _review_call(fn, *args):
    try:
        return _review_outputs(fn(*args))
    except review.USER_ERRORS as exc:
        raise _user_error(exc) from None


def _open_review(name, order, status):
    if not name:
        raise _user_error(review.ProjectError("Pre-label a folder first, or pick a project."))
    return _review_call(review.start, PROJECTS / name, order, status)


def _need(state):
    if not state:
        raise _user_error(review.ProjectError("Open a project first."))
    return state


def _decide(state, annotated, action):
    return _review_call(review.decide, _need(state), action, annotated)


def _export(state, formats, include_proposals, overwrite):
    """Write the chosen formats into the project's folder and offer each as a zip."""
    state = _need(state)
    if not formats:
        raise _user_error(bootstrap_export.ExportError("Choose at least one format."))
    project = review.get_project(state["project"])
    downloads = webapp.new_export_dir()
    try:
        folders = bootstrap_export.export_all(project, formats, include_proposals=include_proposals,
                                              overwrite=overwrite)
    except review.USER_ERRORS as exc:
        raise _user_error(exc) from None
    files = [str(bootstrap_export.zip_export(path, downloads)) for path in folders.values()]
    n = len(project.annotated(include_proposals))
    return f"Exported {n} images to " + ", ".join(f"`{p}`" for p in folders.values()), files


def review_tab() -> list:
    """The Review tab: one image at a time, accept / nudge / relabel / delete / add / skip / reject, then export.

    Returns its outputs (state, annotator, note, counts, position), so other tabs can open an image here."""
    state = gr.State(None)
    with gr.Row():
        project = gr.Dropdown(review.list_projects(PROJECTS), value=None, label="Project", scale=2,
                              elem_id="review-project")
        refresh = gr.Button("↻", scale=0, min_width=40)
        order = gr.Radio([("Least sure first", "confidence"), ("By file name", "name")], value="confidence",
                         label="Order", scale=2)
        status = gr.Radio(["pending", "all", "accepted", "rejected"], value="pending", label="Show", scale=2)
        start = gr.Button("Open", variant="primary", scale=1, elem_id="review-open")
    counts = gr.Markdown(elem_id="review-counts")
    with gr.Row(equal_height=False):
        with gr.Column(scale=3, min_width=480):
            annotator = image_annotator(label="Boxes (drag to move or resize; double-click to relabel or delete; "
                                        "draw to add)", sources=[], show_clear_button=False, show_download_button=False,
                                        show_remove_button=True, image_type="filepath", box_min_size=4,
                                        boxes_alpha=0.15, height=620, elem_id="review-annotator")
        with gr.Column(scale=1, min_width=260):
            position = gr.Markdown(elem_id="review-position")
            note = gr.Markdown(elem_id="review-note")
            accept = gr.Button("✓ Accept boxes", variant="primary", elem_id="review-accept")
            with gr.Row():
                reject = gr.Button("✗ Reject image", variant="stop", elem_id="review-reject")
                skip = gr.Button("Skip", elem_id="review-skip")
            with gr.Row():
                prev = gr.Button("◀ Previous", elem_id="review-prev")
                nxt = gr.Button("Next ▶", elem_id="review-next")
            with gr.Row():
                target = gr.Textbox(placeholder="number or file name", show_label=False, scale=2,
                                    elem_id="review-jump")
                go = gr.Button("Go", scale=1, min_width=50)
    with gr.Accordion("Export the project", open=False):
        with gr.Row():
            formats = gr.CheckboxGroup([("Pascal VOC", "voc"), ("COCO JSON", "coco"), ("YOLO", "yolo"),
                                        ("Hugging Face datasets", "hf")], value=["voc", "coco", "yolo", "hf"],
                                       label="Formats")
            include = gr.Checkbox(False, label="Also export unreviewed proposals")
            overwrite = gr.Checkbox(False, label="Write into a folder that is not this project's export")
        export = gr.Button("Export", elem_id="review-export")
        exported = gr.Markdown()
        files = gr.File(label="Downloads", file_count="multiple", interactive=False)

    outputs = [state, annotator, note, counts, position]
    refresh.click(_project_choices, project, project, api_visibility="private")
    start.click(_open_review, [project, order, status], outputs, api_name="review_open")
    accept.click(lambda s, a: _decide(s, a, "accept"), [state, annotator], outputs, api_name="review_accept")
    reject.click(lambda s, a: _decide(s, a, "reject"), [state, annotator], outputs, api_visibility="private")
    skip.click(lambda s, a: _decide(s, a, "skip"), [state, annotator], outputs, api_visibility="private")
    prev.click(lambda s: _review_call(review.move, _need(s), -1), state, outputs, api_visibility="private")
    nxt.click(lambda s: _review_call(review.move, _need(s), 1), state, outputs, api_visibility="private")
    go.click(lambda s, t: _review_call(review.jump, _need(s), t), [state, target], outputs, api_visibility="private")
    export.click(_export, [state, formats, include, overwrite], [exported, files], api_name="review_export")
    return outputs


MAP_SOURCES = ["Upload", "Bootstrap project"]
MAP_PROGRESS = gr.Progress(track_tqdm=True)  # follows the feature extraction's tqdm bar


def _map_source(choice: str) -> tuple[dict, dict]:
    """Show the upload box, or the list of bootstrap projects (the newest chosen)."""
    up = choice == MAP_SOURCES[0]
    names = [] if up else review.list_projects(PROJECTS)
    return gr.update(visible=up), gr.update(visible=not up, choices=names, value=names[-1] if names else None)


def _make_map(choice, uploads, project, model_name, limit, workdir, progress=MAP_PROGRESS):
    """Features, t-SNE, the picture and the scatter for the uploaded images or a bootstrap project."""
    workdir = workdir or webapp.new_export_dir()
    folder = None
    try:
        if choice == MAP_SOURCES[1]:
            if not project:
                raise review.ProjectError("No bootstrap project yet: pre-label a folder first (Pre-label tab).")
            folder = str(PROJECTS / project)
            names, opener, label_map = tsne.project_images(folder)
        else:
            if not uploads:
                raise webapp.InputError("Upload a folder, some images or a zip of them first.")
            names, opener, label_map = [str(p) for p in tsne.collect_uploads(uploads, workdir)], None, None
        progress(0, desc="Features…")
        dmap = tsne.build_map(names[: int(limit)], load_model(model_name), label_map, opener=opener)
    except (tsne.MapError, *review.USER_ERRORS, *webapp.USER_ERRORS) as exc:
        raise _user_error(exc) from None
    progress(0.95, desc="Drawing…")
    size = tsne.auto_size(len(dmap))
    png, csv_path = Path(workdir) / "dataset-map.png", Path(workdir) / "dataset-map.csv"
    tsne.render_map(dmap, size).save(png)
    tsne.write_csv(dmap, csv_path)
    left_out = "; ".join(html.escape(s) for s in dmap.skipped[:5])
    skipped = f"  \n{len(dmap.skipped)} unreadable file(s) left out: {left_out}" if dmap.skipped else ""
    where = " Clicking one also opens it in the **Review** tab." if folder else ""
    summary = (f"**{len(dmap)} images** mapped in {sum(dmap.seconds.values()):.0f} s, framed by {dmap.colour_by}. "
               f"Click a thumbnail, or brush across the scatter, to see an image.{where}{skipped}")
    scatter = gr.ScatterPlot(tsne.scatter_table(dmap), x="x", y="y", color="group",
                             color_map=tsne.scatter_colours(dmap), tooltip=["image", "name", "label", "probability"])
    state = {"map": dmap, "size": size, "project": folder}
    return (str(png), scatter, summary, state, gr.update(value=str(png), interactive=True),
            gr.update(value=str(csv_path), interactive=True), workdir, [], [], gr.update(visible=bool(folder)))


def _show_point(state: dict | None, index: int | None, session: dict | None, linked: bool) -> tuple:
    """The photo behind a point and its label; for a bootstrap project, the review queue moves to that image."""
    keep = (gr.skip(),) * (len(REVIEW_OUTPUTS) if linked else 0)
    if not state or index is None:
        return (gr.skip(), "Click on a thumbnail.", *keep)
    dmap, folder = state["map"], state["project"]
    try:
        photo = tsne.open_point(dmap, index, folder)
    except (*review.USER_ERRORS, *webapp.USER_ERRORS) as exc:
        raise _user_error(exc) from None
    about = tsne.describe_point(dmap, index)
    if linked and folder:
        try:
            return (photo, about + " · opened in the **Review** tab", *_review_outputs(
                tsne.review_at(folder, dmap.paths[index], session)))
        except review.USER_ERRORS as exc:
            about += f" · {html.escape(str(exc))}"
    return (photo, about, *keep)


REVIEW_OUTPUTS = ("state", "annotator", "note", "counts", "position")
"""What the Review tab's components show (app's _review_outputs), in that order."""


def dataset_map_tab(review_outputs: list | None = None, tabs: gr.Tabs | None = None) -> None:
    """The Dataset map tab: a t-SNE picture of a collection, and a scatter to explore it.

    With the Review tab's outputs (its state, annotator, note, counts, position) and the app's Tabs, clicking an
    image of a bootstrap project also opens it in the review queue."""
    linked = review_outputs is not None
    map_state = gr.State(None)  # {"map": tsne.DatasetMap, "size": picture side, "project": folder or None}
    workdir = gr.State(None, delete_callback=webapp.remove_export_dir)
    band = gr.State([])  # indices of the images shown in the band gallery
    gr.Markdown("Where each image sits among the others, as the classifier sees them: its penultimate-layer "
                "features, PCA to 50 dimensions, then t-SNE. Similar images gather; frames show the predicted "
                "class (or the project's own label).")
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=280):
            source = gr.Radio(MAP_SOURCES, value=MAP_SOURCES[0], label="Images", elem_id="map-source")
            uploads = gr.File(label="A folder, some images, or a zip", file_count="multiple", height=160,
                              file_types=["image", ".zip"], type="filepath", elem_id="map-upload")
            project = gr.Dropdown([], label="Bootstrap project", visible=False, elem_id="map-project")
            model = gr.Dropdown(list_models(), value=DEFAULT_MODEL, label="Model")
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
        index = tsne.image_at(state["map"], evt.index[0], evt.index[1], state["size"]) if state else None
        return _show_point(state, index, sess, linked)

    def brush(state, evt: gr.SelectData):
        """The images in the x band brushed on the scatter, as a gallery."""
        if not state or not isinstance(evt.index, (list, tuple)) or len(evt.index) != 2:
            return [], []
        dmap = state["map"]
        picked = tsne.in_x_range(dmap, float(evt.index[0]), float(evt.index[1]))
        return [(dmap.thumbnails[i], dmap.labels[i]) for i in picked], picked

    def pick_in_band(state, picked, sess, evt: gr.SelectData):
        return _show_point(state, picked[evt.index] if evt.index < len(picked) else None, sess, linked)

    source.change(_map_source, source, [uploads, project], api_visibility="private")
    make.click(_make_map, [source, uploads, project, model, limit, workdir],
               [picture, scatter, summary, map_state, png_file, csv_file, workdir, gallery, band, to_review],
               api_name="dataset_map")
    picture.select(click_map, [map_state, *session], shown, api_visibility="private")
    scatter.select(brush, map_state, [gallery, band], api_visibility="private")
    gallery.select(pick_in_band, [map_state, band, *session], shown, api_visibility="private")
    if tabs is not None:
        to_review.click(lambda: gr.Tabs(selected="review"), None, tabs, api_visibility="private")


HEADER = """# fol: find objects in photos with an ImageNet classifier alone
No box labels, no detector: a classifier trained on ImageNet's 1000 classes says *what* is in the photo,
and its own gradients say *where*. See why, nudge the boxes, export them as Pascal VOC or COCO."""

HOW_IT_WORKS = """
**FOL** (*Fast Unsupervised Object Localization*, Dwaraknath, Menghani and Mongia):
one forward pass classifies the photo. For the chosen class, the neurons of a convolutional layer are
ranked by activation × gradient of the class score; the best *kmax* are guided-backpropagated to the
pixels, each map is thresholded at a percentile into a blob, the classifier re-scores the photo masked
by each blob, and the box goes around the union of the *k* best blobs (Algorithm 1). Top-N classes
follow Algorithm 2: every class whose probability is at least a quarter of the top one's.

**Grad-CAM** (Selvaraju et al., ICCV 2017) weights the last convolutional feature maps by the mean
gradient of the class score; **CAM** (Zhou et al., CVPR 2016) weights them by the classifier's own
weights. Each heatmap is thresholded and a box is drawn around each region.

The photo is classified at the model's resolution (224 × 224, stretched, no crop), and every box is
mapped back to the photo's own pixels, in which the exports are written. Nothing is uploaded
anywhere: the model runs on this server's CPU.
"""

CSS = """
#summary { min-height: 2.5em; }
"""


def build_app() -> gr.Blocks:
    """The whole app; each tab is one function so tabs can be added independently."""
    # uploads and results in Gradio's cache are deleted a day after they were made (checked hourly)
    with gr.Blocks(title="fol: find objects with a classifier", delete_cache=(3600, 86400)) as demo:
        gr.Markdown(HEADER)
        with gr.Tabs() as tabs:
            with gr.Tab("Localize"):
                localize_tab()
            with gr.Tab("Pre-label"):
                prelabel_tab()
            with gr.Tab("Review", id="review"):
                review_outputs = review_tab()
            with gr.Tab("Dataset map"):
                dataset_map_tab(review_outputs, tabs)
        with gr.Accordion("How it works", open=False):
            gr.Markdown(HOW_IT_WORKS)
    return demo


def serve(host: str = "127.0.0.1", port: int = 7860, **launch_args) -> gr.Blocks:
    """Load the shared model once, then serve the app with a queue (a few requests at a time)."""
    load_model()
    demo = build_app()
    demo.queue(default_concurrency_limit=2)
    demo.launch(server_name=host, server_port=port, theme=gr.themes.Soft(), css=CSS,
                allowed_paths=[str(EXAMPLES)], **launch_args)
    return demo


def main() -> None:
    """Serve the app; host and port from flags or GRADIO_SERVER_NAME / GRADIO_SERVER_PORT."""
    parser = argparse.ArgumentParser(description="fol's web app")
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
                        help="default: $GRADIO_SERVER_NAME or %(default)s")
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
                        help="default: $GRADIO_SERVER_PORT or %(default)s")
    args = parser.parse_args()
    serve(args.host, args.port)


if __name__ == "__main__":
    main()
