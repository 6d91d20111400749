"""`prelabel --engine ray`: the pre-labeler's batches on a Ray Data actor pool; this process stays the one writer.

The project's pending images (id, key, image label) stream through `map_batches` into a pool of actors, each
holding one model and method (on a GPU when given one) and its own handle on the project's source: it decodes
its batch and runs the batched engine (`label_batch`, the same code as the local engine). The results stream
back here and each batch is committed to the project's SQLite store in one transaction before it counts as
done, so a run stopped at any point (even kill -9) resumes with exactly the images not committed yet.

Without `address` Ray starts on this machine alone (bound to 127.0.0.1, no dashboard, a small object store)
and is shut down at the end. With `address` it joins a running cluster: every node must then see the
source's path (a shared folder, or a dataset on shared storage) and have fol installed.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict

import numpy as np
import torch

from ..labelmap import LabelMap
from ..methods import create_method
from ..models import load_model
from ..result import Box
from .prelabel import Progress, RunSummary, begin, decode, label_batch
from .project import PrelabelResult, Project
from .sources import open_source

LOOPBACK_SWITCH = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
OBJECT_STORE_MB = 128
"""The local Ray's object store: the stream holds a few batches of image keys and results, never images."""


def start_ray(address: str | None = None, cpus: int | None = None) -> bool:
    """Connect to the cluster at `address`, or start Ray on this machine alone; False when Ray was already up
    (then the caller did not start it and must not shut it down)."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage report from an offline machine
    if not address:
        # Ray turns a loopback node address into the machine's routable one unless it runs "without clusters"
        # (its switch for single-machine Windows/macOS), read once when ray is imported: set it before.
        os.environ[LOOPBACK_SWITCH] = "0"
    import ray
    from ray._private import ray_constants

    if ray.is_initialized():
        return False
    common = {"log_to_driver": False, "logging_level": "warning", "configure_logging": False}
    if address:
        ray.init(address=address, **common)
    else:
        ray_constants.ENABLE_RAY_CLUSTER = False  # in case ray was imported before the switch was set
        ray.init(
            address="local", num_cpus=cpus or os.cpu_count(), include_dashboard=False,
            object_store_memory=OBJECT_STORE_MB << 20, _node_ip_address="127.0.0.1", **common,
        )
    ray.data.DataContext.get_current().enable_progress_bars = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)  # the tqdm bar says how far it is
    logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)  # not that Ray's own bars are off
    return True


def encode_result(r: PrelabelResult) -> str:
    """A result as JSON, to cross from an actor to the writer."""
    return json.dumps(asdict(r))


def decode_result(text: str) -> PrelabelResult:
    d = json.loads(text)
    d["proposals"] = [Box.from_dict(b) for b in d["proposals"]]
    return PrelabelResult(**d)


class Labeler:
    """One actor of the pool: a model and method loaded once, the project's source opened once."""

    def __init__(
        self, model: str, weights: str | None, method: str, params: dict, label_map: LabelMap, topn: int,
        source: dict, folder: str, device: str, threads: int | None,
    ) -> None:
        if threads:
            torch.set_num_threads(threads)
        self.model = load_model(model, weights).to(device)
        self.method = create_method(method, self.model, **params)
        self.label_map, self.topn = label_map, topn
        self.source = open_source(source, folder)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        decoded = [
            decode(self.source, int(i), str(k), str(label) or None, self.method)
            for i, k, label in zip(batch["image_id"], batch["key"], batch["label"])
        ]
        results = label_batch(decoded, self.method, self.label_map, self.topn)
        return {"key": batch["key"], "result": np.array([encode_result(r) for r in results], dtype=object)}


def actor_count(actors: int | None) -> int:
    """The model actors a run starts on the Ray it is connected to: `actors`, else one per CPU."""
    import ray

    return actors or max(1, int(ray.cluster_resources().get("CPU", 1)))


def run_prelabel_ray(
    project: Project,
    model: str,
    method: str | None = None,
    params: dict | None = None,
    label_map: LabelMap | None = None,
    limit: int | None = None,
    topn: int | None = None,
    progress: Progress | None = None,
    log: Callable[[str], None] | None = None,
    batch_size: int = 8,
    actors: int | None = None,
    gpus_per_actor: float = 0.0,
    threads: int | None = 1,
    address: str | None = None,
    weights: str | None = None,
) -> RunSummary:
    """`run_prelabel` on Ray Data: `actors` model actors (default: one per CPU here), each with
    `gpus_per_actor` GPUs (0: CPU actors, `threads` torch threads each); results committed here, batch by batch."""
    import ray

    run, _, todo, summary = begin(project, load_model(model, weights), method, params, label_map, limit, topn,
                                  progress)
    start = time.perf_counter()
    if todo:
        project.source()  # a zip is extracted (once) before the actors open it
        started = start_ray(address)
        try:
            pool = actor_count(actors)
            items = [{"image_id": r.id, "key": r.key, "label": r.image_label or ""} for r in todo]
            results = ray.data.from_items(items).map_batches(
                Labeler,
                fn_constructor_kwargs={
                    "model": model, "weights": weights, "method": run.method, "params": run.params,
                    "label_map": project.label_map, "topn": run.topn, "source": project.meta("source"),
                    "folder": str(project.folder.resolve()), "device": "cuda" if gpus_per_actor else "cpu",
                    "threads": threads,
                },
                batch_size=batch_size, batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=pool),
                num_cpus=0 if gpus_per_actor else 1, num_gpus=gpus_per_actor or None,
            )
            for out in results.iter_batches(batch_size=batch_size, batch_format="numpy"):
                done = [decode_result(t) for t in out["result"]]
                project.save_prelabels(done)  # committed before any of them counts as done
                summary.add([str(k) for k in out["key"]], done, log)
                if progress:
                    progress(summary.done, len(todo), str(out["key"][-1]))
        finally:
            if started:
                ray.shutdown()
    summary.seconds = time.perf_counter() - start
    summary.remaining = project.counts()["new"]
    return summary
