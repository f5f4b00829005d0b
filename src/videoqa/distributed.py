"""The collection runner's stages on a Ray cluster (Ray Data), for archives beyond one machine.

Nothing here schedules: Ray Data does. Each stage is the collection runner's own function
(``videoqa.collection``), so a file gives the same report here as on one machine:

1. listing, on the driver: ``find_videos`` over the paths given (and those of a text file,
   ``--paths-from``, for archives the driver may not see: those are passed on unchecked);
2. ``plan_file`` in a CPU task (probe, clip windows), with a copy of the driver's ``VideoQA``
   whose engines carry no weights: planning reads only their names and preprocessing;
3. ``decode_clips`` in the same CPU task (Ray fuses the two; ``flat_map``): one row per clip
   holding the model-ready arrays, then one row that closes the file (its clip count);
4. ``infer_batch`` in a pool of actors (``map_batches`` with an ``ActorPoolStrategy``): each
   loads the model once and answers batches of clips from any files; ``gpus_per_actor`` may be
   a fraction, so several replicas share one card;
5. on the driver, as rows stream back: ``finish_file`` once a file's last clip is in, then
   ``write_sidecars`` (atomic) and, when asked, the archive index.

Ray retries a task whose worker died and restarts a dead actor, so a row may be computed twice;
the driver keys results by (file, clip), finishes each file once, and so writes each file's
sidecars exactly once. A file that fails (unreadable, undecodable, refused by a check) comes
back as a row saying why and fails alone.
"""

from __future__ import annotations

import copy
import logging
import os
import pickle
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from videoqa.collection import (
    DecodedClip,
    FileDecoded,
    FileOutcome,
    FilePlan,
    decode_clips,
    finish_file,
    infer_batch,
    plan_file,
)
from videoqa.errors import ConfigError, MediaError, ModelError, VideoQAError
from videoqa.report import ClipResult

if TYPE_CHECKING:
    from videoqa.pipeline import VideoQA

logger = logging.getLogger("videoqa.distributed")

INSTALL_HINT = 'Ray is not installed: pip install "videoqa[ray]"'
ADDRESSES = ("auto", "local")
"""Besides a cluster's address: ``auto`` (a running cluster), ``local`` (start one here)."""
DEFAULT_BATCH_SIZE = 8
JOB_CONFIG_VARIABLE = "RAY_JOB_CONFIG_JSON_ENV_VAR"
"""Set by Ray in a ``ray job submit`` entrypoint's environment (the job's own config)."""
MAX_BLOCKS = 10_000
"""At most this many input blocks: one file per block (so files spread over the decoding
tasks) up to this many files, then several files per block."""

# Row kinds between the stages. Every row has the same three columns: the file's position in
# the collection, its kind, and a pickled payload.
CLIP, DECODED, FAILED, RESULT = "clip", "decoded", "failed", "result"
_ClipRow = tuple[FilePlan, DecodedClip, "FileDecoded | None"]
"""A clip row's payload: its file's plan, the clip, and on the file's last clip its end."""


def require_ray() -> Any:
    """The ``ray`` module, or a one-line ``ConfigError`` saying how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401 - the Data library comes with the extra, not with ray
    except ImportError:
        raise ConfigError(None, INSTALL_HINT, setting="ray") from None
    return ray


def connect(address: str = "local", *, num_cpus: int | None = None, quiet: bool = False) -> None:
    """Join a Ray cluster: ``auto`` (a running one), ``local`` (start one in this process),
    or an address (``ray://head:10001``, ``head:6379``). Nothing happens when this process is
    connected already (a test's cluster, a ``ray job submit`` driver that called ``ray.init``).
    ``quiet``: Ray's own info lines and Ray Data's progress log stay out of this process's
    output (the command line has its own).
    """
    ray = require_ray()
    if quiet:
        from ray.data import DataContext

        context = DataContext.get_current()
        context.enable_progress_bars = False
        context.print_on_execution_start = False
        # Its info ("progress bars disabled") and its errors: a failed run ends in one line
        # of ours (_rows_of) in place of Ray Data's tracebacks and statistics.
        logging.getLogger("ray.data").setLevel(logging.CRITICAL)
    if ray.is_initialized():
        return
    options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
    if quiet:
        options["logging_level"] = logging.WARNING
    if not address.startswith("ray://") and JOB_CONFIG_VARIABLE not in os.environ:
        # Ray Client adds no folder to the workers' path; a `ray job submit` driver runs in
        # the job's working_dir, and its runtime_env is the job's to set.
        options["runtime_env"] = {"worker_process_setup_hook": _import_the_drivers_videoqa()}
    if address == "local":
        options["num_cpus"] = num_cpus
        target: str | None = "local"
    else:
        target = address
    try:
        ray.init(address=target, **options)
    except (ConnectionError, RuntimeError, ValueError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ConfigError(None, f"cannot join a Ray cluster at {address}: {reason}",
                          setting="ray") from None  # fmt: skip


def _import_the_drivers_videoqa() -> Callable[[], None]:
    """A worker setup hook: each worker imports ``videoqa`` from the folder this driver did.

    Ray puts the driver's working directory first on every worker's import path (the job's
    ``py_driver_sys_path``), so a folder named ``videoqa`` there (the one holding a clone,
    say) took the place of the installed package: ``cannot import name '__version__' from
    'videoqa' (unknown location)``. The hook runs in each worker before any task; it is a
    nested function, so Ray pickles it by value and unpickling it imports nothing of ours.
    A node without that folder falls back to the usual search.
    """
    folder = str(Path(__file__).resolve().parents[1])  # the folder holding videoqa/

    def import_videoqa_from_the_drivers_folder() -> None:
        import importlib.machinery
        import sys

        class DriversVideoqa:
            """Finds ``videoqa`` in the driver's folder, before Ray's additions to sys.path."""

            @staticmethod
            def find_spec(name: str, path: Any = None, target: Any = None) -> Any:
                if name != "videoqa":
                    return None
                return importlib.machinery.PathFinder.find_spec(name, [folder])

        sys.meta_path.insert(0, DriversVideoqa)  # type: ignore[arg-type]

    return import_videoqa_from_the_drivers_folder


@dataclass(frozen=True)
class RaySettings:
    """How the collection spreads over the cluster.

    ``model_actors``: model replicas; ``gpus_per_actor``: GPUs each reserves (``None``: 1 when
    the cluster has GPUs and the models are not asked to run on the CPU, else 0; fractions
    share a card); ``decode_tasks``: decoding tasks at once (``None``: as many as the cluster
    has CPUs left over); ``batch_size``: clips per model call.
    """

    address: str = "local"
    model_actors: int = 1
    gpus_per_actor: float | None = None
    decode_tasks: int | None = None
    batch_size: int = DEFAULT_BATCH_SIZE

    def __post_init__(self) -> None:
        for name in ("model_actors", "batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(None, f"must be at least 1, got {getattr(self, name)}",
                                  setting=name)  # fmt: skip
        if self.decode_tasks is not None and self.decode_tasks < 1:
            raise ConfigError(None, f"must be at least 1, got {self.decode_tasks}",
                              setting="decode_tasks")  # fmt: skip
        if self.gpus_per_actor is not None and self.gpus_per_actor < 0:
            raise ConfigError(None, f"must be 0 or more, got {self.gpus_per_actor}",
                              setting="gpus_per_actor")  # fmt: skip


# --------------------------------------------------------------------------- the stages


def planning_copy(
    qa: VideoQA, questions: Sequence[str] = (), captions: bool = True
) -> VideoQA:
    """A copy of ``qa`` for planning: the same settings, and in place of each engine its
    ``ModelFacts`` (names, kind, frames, preprocessing): a loaded engine's own, else read from
    the checkpoint's config files, for each checkpoint the run needs. The driver needs no
    weights and no torch to plan; the copy pickles small, and a planning task unpickles it
    without importing torch or transformers (seconds and hundreds of MiB a process). ``qa``
    is left as it was. Raises ``ModelError`` for a checkpoint that is missing or of no known
    family, as loading it would."""
    from videoqa.engines import load_facts

    planner = copy.copy(qa)
    planner._engines = {key: engine.facts() for key, engine in qa._engines.items()}  # type: ignore[misc]
    for model, revision in needed_models(qa, questions, captions):
        if (model, revision) not in planner._engines:
            facts = load_facts(model, revision=revision)
            planner._engines[(model, revision)] = facts  # type: ignore[assignment]
    return planner


@dataclass(frozen=True)
class _Job:
    """What the planning tasks need besides the file: the planner, questions, options."""

    planner: VideoQA
    questions: tuple[str, ...]
    captions: bool
    plan_options: dict[str, Any]


def _row(position: int, kind: str, payload: Any) -> dict[str, Any]:
    return {"position": position, "kind": kind, "payload": pickle.dumps(payload, protocol=5)}


def _failed_row(position: int, path: str, error: BaseException) -> dict[str, Any]:
    from videoqa.collection import _one_line

    return _row(position, FAILED, (path, _one_line(path, error)))


def _plan_row(row: dict[str, Any], job: _Job) -> dict[str, Any]:
    """Stage 2: probe and plan one file (a CPU task); a failure becomes the file's row."""
    position, path = int(row["position"]), str(row["path"])
    try:
        if not os.path.isfile(path):
            raise MediaError(path, "no such file" if not os.path.exists(path) else "not a file")
        plan = plan_file(job.planner, path, position=position, questions=job.questions,
                         captions=job.captions, **job.plan_options)  # fmt: skip
    except Exception as error:  # noqa: BLE001 - any failure is that file's alone
        return _failed_row(position, path, error)
    return _row(position, "planned", plan)


def _decode_rows(row: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Stage 3: one row per decoded clip, ``(plan, clip, end)``; the file's last clip carries
    its end (``FileDecoded``), so that every row the model actors get is a clip and their
    batches are full (a file with no clip gets a row of its own)."""
    position = int(row["position"])
    if row["kind"] != "planned":
        yield row
        return
    plan: FilePlan = pickle.loads(row["payload"])
    held: DecodedClip | None = None
    try:
        # FFmpeg's automatic threads, as the local runner decodes: around a damaged packet
        # (a file cut short) frame threading drops frames that one thread would conceal, so
        # one thread here would give such a file other frames than the local runner.
        for item in decode_clips(plan):
            if isinstance(item, FileDecoded):
                if held is None:
                    yield _row(position, DECODED, (plan, item))
                else:
                    yield _row(position, CLIP, (plan, held, item))
            else:
                if held is not None:
                    yield _row(position, CLIP, (plan, held, None))
                held = item
    except Exception as error:  # noqa: BLE001 - the file fails alone
        yield _failed_row(position, plan.path, error)


class _EngineActor:
    """Stage 4: one model replica. Loads the checkpoints once, then answers batches of clips
    (any files); other rows pass through untouched."""

    def __init__(
        self,
        models: dict[str, Any],
        roles: tuple[tuple[str, str | None], ...],
        cpu_share: int | None = None,
    ) -> None:
        from videoqa.pipeline import VideoQA

        if cpu_share is not None:  # on the CPU: Ray held torch to the one CPU it reserved
            import torch

            torch.set_num_threads(_cpu_threads(cpu_share))
        self.qa = VideoQA(**models)
        for model, revision in roles:
            self.qa.engine(model, revision)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        rows = [
            (int(position), str(kind), payload)
            for position, kind, payload in zip(
                batch["position"], batch["kind"], batch["payload"], strict=True
            )
        ]
        out: list[dict[str, Any]] = []
        clips: list[_ClipRow] = []
        for position, kind, payload in rows:
            if kind == CLIP:
                clips.append(pickle.loads(payload))
            else:
                out.append({"position": position, "kind": kind, "payload": payload})
        for group in _by_batch_key(clips):
            try:
                results = infer_batch(self.qa, [(plan, decoded) for plan, decoded, _ in group])
            except Exception as error:  # noqa: BLE001 - those files fail, the run goes on
                for position, path in dict((p.position, p.path) for p, _, _ in group).items():
                    out.append(_failed_row(position, path, error))
                continue
            for (plan, decoded, end), result in zip(group, results, strict=True):
                ended = (plan, end) if end is not None else None
                out.append(_row(plan.position, RESULT, (decoded.number, result, ended)))
        return {
            "position": [row["position"] for row in out],
            "kind": [row["kind"] for row in out],
            "payload": [row["payload"] for row in out],
        }


def _by_batch_key(clips: list[_ClipRow]) -> list[list[_ClipRow]]:
    groups: dict[Any, list[_ClipRow]] = {}
    for clip in clips:
        groups.setdefault(clip[0].batch_key, []).append(clip)
    return list(groups.values())


# --------------------------------------------------------------------------- the driver


@dataclass
class _FileState:
    path: str
    plan: FilePlan | None = None
    decoded: FileDecoded | None = None
    results: dict[int, ClipResult] = field(default_factory=dict)
    ended: bool = False


def run_on_ray(
    qa: VideoQA,
    videos: Sequence[str | os.PathLike[str]],
    *,
    settings: RaySettings | None = None,
    questions: Sequence[str] = (),
    captions: bool = True,
    formats: Sequence[str] = (),
    output_dir: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    sidecar_options: dict[str, Any] | None = None,
    index: Any = None,
    search_folders: bool = True,
    **plan_options: Any,
) -> Iterator[FileOutcome]:
    """Process ``videos`` on a Ray cluster; yield each file's outcome as it ends.

    ``qa`` is the driver's ``VideoQA``; it need not load its checkpoints: the driver reads
    their config files (``planning_copy``) and ships their names and preprocessing to the
    planning tasks, and each model actor loads the weights by the same name. ``videos`` are
    files, folders (searched as ``find_videos`` does) or paths only the workers see.
    ``formats``, ``output_dir``, ``overwrite`` and ``sidecar_options`` (``subtitle_language``,
    ``subtitles``: the ``videoqa.delivery.Delivery`` fields) go to
    ``write_sidecars``; ``index`` (an ``ArchiveIndex``) gets each report too.
    ``plan_options`` are ``VideoQA.plan``'s. ``search_folders=False`` takes ``videos`` as they
    are, without looking at them on the driver (a long list of files only the workers see).
    """
    from videoqa.collection import find_videos
    from videoqa.sidecars import check_targets

    settings = settings or RaySettings()
    ray = require_ray()
    qa = planning_copy(qa, questions, captions)
    connect(settings.address)
    gpus = _gpus_per_actor(ray, settings, qa)
    decode_tasks = _decode_tasks(ray, settings)
    listed = find_videos(videos) if search_folders else videos
    paths = [os.path.abspath(path) for path in listed]
    sidecars = dict(sidecar_options or {})
    wanted = tuple(formats)
    states = {position: _FileState(path) for position, path in enumerate(paths)}
    pending: list[dict[str, Any]] = []
    for position, path in enumerate(paths):
        try:
            if wanted:
                check_targets(path, formats=wanted, output_dir=output_dir, overwrite=overwrite,
                              subtitle_language=sidecars.get("subtitle_language"))
        except VideoQAError as error:
            states[position].ended = True
            yield FileOutcome(path, error=str(error))
            continue
        pending.append({"position": position, "path": path})
    if not pending:
        return

    dataset = _dataset(ray, qa, pending, settings, gpus, decode_tasks, tuple(questions),
                       captions, plan_options)
    for row in _rows_of(ray, dataset):
        state = states[int(row["position"])]
        if state.ended:
            continue  # a row computed again by a retried task, or of a failed file
        failure = _take_row(state, str(row["kind"]), pickle.loads(row["payload"]))
        if failure is not None:
            state.ended = True
            yield FileOutcome(state.path, error=failure)
        elif state.plan is not None and state.decoded is not None \
                and len(state.results) >= state.decoded.clips:
            state.ended = True
            yield _deliver(state, wanted, output_dir, overwrite, sidecars, index)
            state.plan, state.decoded, state.results = None, None, {}  # the driver keeps little
    for state in states.values():
        if not state.ended:  # cannot happen unless Ray dropped rows: say so, never pretend
            yield FileOutcome(state.path, error=f"{state.path}: no result came back from Ray")


def _take_row(state: _FileState, kind: str, payload: Any) -> str | None:
    """One row of a file into its state: its plan and end, or a clip's result; the error
    line when the row says the file failed."""
    if kind == FAILED:
        return str(payload[1])
    if kind == DECODED:
        state.plan, state.decoded = payload
    elif kind == RESULT:
        number, result, ended = payload
        state.results[number] = result
        if ended is not None:  # the file's last clip: how many there are, where it ends
            state.plan, state.decoded = ended
    return None


def _rows_of(ray: Any, dataset: Any) -> Iterator[dict[str, Any]]:
    """The dataset's rows as they come; a failure of the run itself (a model actor that
    cannot start: the checkpoint missing on a node, no memory for it) in one line."""
    try:
        yield from dataset.iter_rows()
    except ray.exceptions.RayError as error:
        text = getattr(error, "error_msg", None) or str(error)
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        reason = lines[-1] if lines else type(error).__name__  # the worker's own error
        reason = re.sub(r"^videoqa\.errors\.\w+: ", "", reason)
        if getattr(error, "actor_init_failed", False):
            raise ModelError(None, f"a model actor could not start: {reason}",
                             setting="model") from None  # fmt: skip
        raise VideoQAError(None, f"the Ray run stopped: {reason}") from None


def _deliver(
    state: _FileState,
    formats: tuple[str, ...],
    output_dir: str | os.PathLike[str] | None,
    overwrite: bool,
    sidecars: dict[str, Any],
    index: Any,
) -> FileOutcome:
    """A file's report, sidecars and index rows, once every clip is in."""
    from videoqa.delivery import Delivery

    assert state.plan is not None and state.decoded is not None
    try:  # a file that decoded to no clip fails here, as in the local runner
        report = finish_file(state.plan, list(state.results.values()),
                             state.decoded.decodable_end)  # fmt: skip
    except VideoQAError as error:
        return FileOutcome(state.path, error=str(error))
    written: list[Path] = []
    delivery = Delivery(formats, output_dir, overwrite, index=index, **sidecars)
    try:
        written = delivery.deliver(report, state.path)
    except VideoQAError as error:
        return FileOutcome(state.path, report=report, written=tuple(written), error=str(error))
    return FileOutcome(state.path, report=report, written=tuple(written))


def _dataset(
    ray: Any,
    qa: VideoQA,
    rows: list[dict[str, Any]],
    settings: RaySettings,
    gpus: float,
    decode_tasks: int,
    questions: tuple[str, ...],
    captions: bool,
    plan_options: dict[str, Any],
) -> Any:
    """The Ray Data pipeline: files -> plans -> clips -> results (lazy until iterated)."""
    from ray.data import ActorPoolStrategy, TaskPoolStrategy

    job = _Job(qa, questions, captions, dict(plan_options))
    roles = needed_models(qa, questions, captions)
    models = {
        "model": qa.model, "caption_model": qa.caption_model, "revision": qa.revision,
        "caption_revision": qa.caption_revision, "device": qa.device, "dtype": qa.dtype,
        "fit": qa.fit, "quantize": qa.quantize,
    }  # fmt: skip
    cpu_share = None
    if not gpus:  # Ray hides no GPU from an actor that reserved none: keep it off them
        models["device"] = "cpu"
        cpu_share = settings.model_actors
    files = ray.data.from_items(rows, override_num_blocks=min(len(rows), MAX_BLOCKS))
    planned = files.map(_plan_row, fn_args=(job,), compute=TaskPoolStrategy(size=decode_tasks))
    decoded = planned.flat_map(_decode_rows, compute=TaskPoolStrategy(size=decode_tasks))
    return decoded.map_batches(
        _EngineActor,
        fn_constructor_args=(models, roles, cpu_share),
        batch_size=settings.batch_size,
        batch_format="numpy",
        compute=ActorPoolStrategy(size=settings.model_actors),
        num_gpus=gpus or None,
    )


def _decode_tasks(ray: Any, settings: RaySettings) -> int:
    """Decoding tasks at once: as asked, else the cluster's CPUs less one per model actor.

    Each model actor holds one of the cluster's CPUs and decoding needs one more: with fewer,
    Ray waits for ever. Refused on a cluster started here; a remote cluster may be adding
    nodes, so there it is a warning."""
    cpus = ray.cluster_resources().get("CPU", 0)
    spare = int(cpus) - settings.model_actors
    if spare >= 1:
        return settings.decode_tasks or spare
    needed = settings.model_actors + 1
    reason = (f"{settings.model_actors} model actor{'s' if settings.model_actors > 1 else ''} "
              f"and a decoding task need {needed} CPUs, the Ray cluster")  # fmt: skip
    if settings.address == "local":
        raise ConfigError(None, f"{reason} started here has {cpus:g}", setting="model_actors")
    logger.warning("%s has %g now: the run waits for more nodes", reason, cpus)
    return settings.decode_tasks or 1


def _gpus_per_actor(ray: Any, settings: RaySettings, qa: VideoQA) -> float:
    """GPUs each model actor reserves: as asked, else 1 where the cluster has GPUs and the
    models may use them. Asking for GPUs that a cluster started here cannot have is refused
    (the actors would wait for them for ever); a remote cluster may be adding GPU nodes.
    Quantised models run on the CPU: none by default, and asking for GPUs is refused."""
    if qa.quantize is not None:
        if settings.gpus_per_actor:
            raise ConfigError(None, f"{qa.quantize} quantisation runs on the CPU only: no "
                              "gpus_per_actor with it", setting="quantize")  # fmt: skip
        return 0.0
    cluster_gpus = ray.cluster_resources().get("GPU", 0)
    if settings.gpus_per_actor is None:
        return 1.0 if cluster_gpus > 0 and qa.device != "cpu" else 0.0
    if settings.gpus_per_actor > 0 and cluster_gpus == 0:
        if settings.address == "local":
            raise ConfigError(None, f"{settings.gpus_per_actor:g} asked for, but the Ray "
                              "cluster started here has no GPU", setting="gpus_per_actor")
        logger.warning("the Ray cluster has no GPU now: the model actors wait for GPU nodes")
    return settings.gpus_per_actor


def needed_models(
    qa: VideoQA, questions: Sequence[str], captions: bool
) -> tuple[tuple[str, str | None], ...]:
    """The checkpoints a run needs (each model actor loads them): (name, revision), once each."""
    wanted = ([(qa.model, qa.revision)] if questions else []) + (
        [(qa.caption_model, qa.caption_revision)] if captions else []
    )
    return tuple(dict.fromkeys(wanted))


def _cpu_threads(model_actors: int) -> int:
    """torch threads of a model actor on the CPU: its machine's cores shared among the model
    actors, as the local runner's one inference loop has them all. Ray reserves one CPU per
    actor for scheduling (the rest go to the decoding tasks, light beside the model) and sets
    OMP_NUM_THREADS to it, which would hold torch to one thread."""
    return max(1, (os.cpu_count() or 1) // model_actors)

