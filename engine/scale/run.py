"""`medviewer predict ROOT --model M --engine ray`: the driver.

Scans ROOT as the local engine does, streams the series that are not finished
yet through Ray Data (`stages`), assembles each series as its slices come
back, writes it to --results the moment it is complete, and finally writes the
--json document (`predictdoc`, the local engine's schema) in scan order.
Ctrl-C stops the stream, keeps every finished series and rebuilds the tables;
the same command resumes.  Exit codes as for the local engine: 0 all done,
1 done with skipped files/slices or failed series, 2 nothing usable.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from medviewer.engine.scale.work import SeriesWork, chunk_rows, scan_archive
from medviewer.viewer.clikit import EXIT_FAIL, EXIT_OK, EXIT_PARTIAL
from medviewer.viewer.errors import UsageError

log = logging.getLogger("medviewer.scale")
PROG = "medviewer predict"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The --engine switch and the options of the Ray engine (on `medviewer predict`)."""
    g = p.add_argument_group("archive-scale inference (--engine ray; pip install \"medviewer[scale]\")")
    g.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local: this process; ray: Ray Data over this machine's cores and GPUs, or a cluster")
    g.add_argument("--ray-address", metavar="ADDR",
                   help="join a running Ray cluster (auto, or HOST:PORT of its head); default: a private "
                        "local instance on the loopback interface")
    g.add_argument("--workers", type=int, metavar="N",
                   help="model actors (default: one per GPU, else 1)")
    g.add_argument("--gpus-per-worker", type=float, metavar="F",
                   help="GPUs per model actor, fractions share a GPU (default 1 when the cluster has GPUs, else 0)")
    g.add_argument("--results", metavar="DIR",
                   help="write each finished series here at once (JSON + Parquet tables); a re-run resumes")
    g.add_argument("--retries", type=int, default=2, metavar="N",
                   help="retries of a failing slice or chunk before its series is recorded as failed")


def check_local_arguments(args: argparse.Namespace) -> None:
    """Options of the Ray engine given without --engine ray: a UsageError naming them."""
    given = [f"--{name.replace('_', '-')}" for name in ("ray_address", "workers", "gpus_per_worker", "results")
             if getattr(args, name, None) is not None]
    if given:
        raise UsageError(f"{', '.join(given)} need(s) --engine ray")


@dataclass
class _Pending:
    """A series whose slices are coming back."""

    work: SeriesWork
    probs: np.ndarray
    got: np.ndarray
    ood: np.ndarray | None = None         # (N,) scores (NaN where none), None without an OOD model
    failed: dict[int, str] = field(default_factory=dict)
    fatal: str = ""
    cams: dict[int, str] = field(default_factory=dict)
    devices: set[str] = field(default_factory=set)

    @property
    def complete(self) -> bool:
        return bool(self.got.all())


class _Run:
    """State of one driver run: the work, what came back, and where results go."""

    def __init__(self, args: argparse.Namespace, model: Any, sha256: str, work: list[SeriesWork],
                 fingerprints: list[str], results: Any, progress: Any) -> None:
        self.args = args
        self.model = model
        self.sha256 = sha256
        self.work = work
        self.fingerprints = fingerprints
        self.results = results
        self.progress = progress
        self.entries: dict[int, dict[str, Any]] = {}  # series index -> --json entry (no --results)
        self.errors: dict[int, str] = {}
        self.error_entries: dict[int, dict[str, Any]] = {}  # classified, but an output failed
        self.skipped_slices = 0
        self.devices: set[str] = set()
        self.writers: list[Any] = []                  # --dicom-out: DicomWriter actors
        self.writing: dict[Any, tuple[Any, ...]] = {}  # ObjectRef -> (work, entry, skipped, devices, writer)
        from medviewer.engine.audit import AuditLog

        self.audit_log = AuditLog()
        self.audit_failed = False

    # -- one series is complete ------------------------------------------------------------
    def finish(self, p: _Pending) -> None:
        from medviewer.engine.predictdoc import series_entry
        from medviewer.engine.series import SeriesPrediction
        from medviewer.viewer.clikit import item_reason

        w = p.work
        warnings = self.input_warnings(w)
        if p.fatal or len(p.failed) == len(w):
            reason = p.fatal or (f"no slice could be used ({len(w)} of {len(w)} failed after "
                                 f"{self.args.retries + 1} attempt(s); first: {p.failed[min(p.failed)]})")
            self.record_audit(w, None, [], warnings, len(w))
            self.fail(w, reason)
            return
        threshold = self.model.ood.threshold if p.ood is not None else None
        pred = SeriesPrediction(p.probs, None, dict(p.failed), p.ood, threshold)
        keep = [i for i in range(len(w)) if i not in p.failed]
        ood = pred.ood_summary(keep)
        if ood is not None and ood["flagged"]:
            self.progress.say(f"{PROG}: warning: series {w.series_uid}: {ood['flagged']} of {ood['checked']} "
                              "image(s) unlike the images this model was trained on")
        audit_id = self.record_audit(w, pred, keep, warnings, len(p.failed))
        entry = series_entry(self.model.classes, w.series_uid, w.items(), pred, self.args.aggregate,
                             self.args.top_k, p.cams, input_warnings=[x.to_json() for x in warnings],
                             audit_id=audit_id)
        skipped = [{"path": w.rel[i], "frame": w.frames[i], "reason": r} for i, r in sorted(p.failed.items())]
        for s in skipped:
            self.progress.say(f"{PROG}: skipped {s['path']}: {item_reason(s['path'].rsplit('/', 1)[-1], s['reason'])}")
        self.skipped_slices += len(skipped)
        if self.writers:  # finished once its DICOM objects are written too
            self._write_dicom(w, p, entry, skipped)
        else:
            self._store(w, entry, skipped, p.devices)

    def input_warnings(self, w: SeriesWork) -> list[Any]:
        """The input check (engine.inputcheck) on the values the scan read; printed once."""
        from medviewer.engine import inputcheck

        warnings = inputcheck.check(self.model.card, **{k: list(v) for k, v in w.values})
        if warnings:
            self.progress.say(f"{PROG}: warning: series {w.series_uid}: {inputcheck.summary(warnings)}")
        return warnings

    def record_audit(self, w: SeriesWork, pred: Any, keep: list[int], warnings: list[Any],
                     n_failed: int) -> str | None:
        """The series' entry in the audit log (engine.audit), as the local engine writes it."""
        from medviewer.engine import audit
        from medviewer.engine.infer import aggregate, aggregation_name

        agg = aggregate(pred.probs[keep], self.args.aggregate, self.args.top_k) if keep else None
        ood = pred.ood_summary(keep) if pred is not None else None
        uids = list(dict.fromkeys(w.sop_uids[i] for i in keep if i < len(w.sop_uids) and w.sop_uids[i]))
        entry = audit.Analysis(
            model_name=self.model.card.name, model_version=self.model.card.version, model_sha256=self.sha256,
            device="; ".join(sorted(self.devices)) or "ray", study_uid=w.study_uid or None,
            series_uid=w.series_uid, n_items=len(keep), n_failed=n_failed, sop_uids=uids,
            result=audit.series_result(self.model.classes, agg, aggregation_name(self.args.aggregate,
                                                                                  self.args.top_k)),
            ood_checked=ood is not None, ood_flagged=ood["flagged"] if ood else None,
            ood_fraction=ood["fraction_flagged"] if ood else None,
            input_warnings=[x.text() for x in warnings], source="cli-ray",
            status="complete" if keep else "failed")
        try:
            return self.audit_log.record_analysis(entry)
        except audit.AuditError as exc:
            self.progress.say(f"{PROG}: warning: {exc}")
            self.audit_failed = True
            return None

    def _store(self, w: SeriesWork, entry: dict[str, Any], skipped: list[dict[str, Any]], devices: set[str],
               dicom: list[str] | None = None) -> None:
        if self.results is not None:
            record = {"result": entry, "study_uid": w.study_uid, "skipped": skipped,
                      "device": sorted(devices), "model_sha256": self.sha256}
            if dicom is not None:
                record["dicom"] = dicom
            self.results.save(w.name, self.fingerprints[w.index], record)
        else:
            self.entries[w.index] = entry
        self.progress.add(series=1, images=len(w))

    def settled(self, w: SeriesWork) -> bool:
        """Finished or recorded as failed in this run."""
        return w.index in self.entries or w.index in self.errors or (
            self.results is not None and self.results.is_done(w.name, self.fingerprints[w.index]))

    def fail(self, w: SeriesWork, reason: str, entry: dict[str, Any] | None = None) -> None:
        self.errors[w.index] = reason
        if entry is not None:
            self.error_entries[w.index] = entry
        log.error("series %s failed: %s", w.series_uid, reason)
        self.progress.say(f"{PROG}: series {w.series_uid} failed: {reason}")
        if self.results is not None:
            record = {"series_uid": w.series_uid, "study_uid": w.study_uid, "images": len(w), "error": reason}
            if entry is not None:
                record["result"] = entry
            self.results.save_error(w.name, record)
        self.progress.add(failed=1, images=len(w))

    # -- --dicom-out ---------------------------------------------------------------------
    def _write_dicom(self, w: SeriesWork, p: _Pending, entry: dict[str, Any],
                     skipped: list[dict[str, Any]]) -> None:
        while len(self.writing) >= 2 * len(self.writers):  # back-pressure: the stream waits
            self.collect_dicom(block=True)
        busy = {id(v[4]): 0 for v in self.writing.values()}
        for v in self.writing.values():
            busy[id(v[4])] += 1
        writer = min(self.writers, key=lambda a: busy.get(id(a), 0))
        ood = None if p.ood is None else (p.ood, float(self.model.ood.threshold))
        trust = {"input_warnings": [str(x.get("message", "")) for x in entry.get("input_warnings", [])],
                 "audit_id": entry.get("audit_id")}
        ref = writer.write.remote(w.series_uid, list(w.paths), list(w.frames), p.probs, dict(p.failed), ood, trust)
        self.writing[ref] = (w, entry, skipped, set(p.devices), writer)

    def collect_dicom(self, block: bool = False) -> None:
        """Take in the DICOM results that are ready (with `block`, wait for one)."""
        import ray

        from medviewer.engine.scale.dicom import summary_line

        if not self.writing:
            return
        refs = list(self.writing)
        ready, _ = ray.wait(refs, num_returns=1 if block else len(refs), timeout=None if block else 0)
        for ref in ready:
            w, entry, skipped, devices, _ = self.writing.pop(ref)
            try:
                out = ray.get(ref)
            except Exception as exc:  # the writer's process died more often than Ray restarts it
                out = {"paths": [], "notes": [], "error": f"the DICOM writer failed ({type(exc).__name__})"}
            for note in out["notes"]:
                self.progress.say(f"{PROG}: {note}")
            if out["error"]:
                self.fail(w, f"no DICOM results: {out['error']}", entry)
            else:
                self.progress.say(summary_line(w.series_uid, out["paths"]))
                self._store(w, entry, skipped, devices, out["paths"])

    # -- the stream ----------------------------------------------------------------------
    def consume(self, batches: Iterator[dict[str, np.ndarray]], todo: list[SeriesWork]) -> list[_Pending]:
        """Assemble rows into series; returns the series still incomplete when the stream ends."""
        pending: dict[int, _Pending] = {}
        n_classes = len(self.model.classes)
        has_ood = getattr(self.model, "ood", None) is not None
        for batch in batches:
            for j in range(len(batch["key"])):
                key = int(batch["key"][j])
                p = pending.get(key)
                if p is None:
                    w = todo[key]
                    p = pending[key] = _Pending(w, np.zeros((len(w), n_classes), np.float32),
                                                np.zeros(len(w), dtype=bool),
                                                np.full(len(w), np.nan, np.float32) if has_ood else None)
                i = int(batch["index"][j])
                if p.got[i]:
                    continue  # a retried task delivered this slice twice
                p.got[i] = True
                reason = str(batch["reason"][j])
                if bool(batch["fatal"][j]):
                    p.fatal = p.fatal or reason
                elif reason:
                    p.failed[i] = reason
                else:
                    p.probs[i] = batch["probs"][j]
                    if p.ood is not None:
                        p.ood[i] = batch["ood"][j]
                    cam = str(batch["cam"][j])
                    if cam:
                        p.cams[i] = cam
                p.devices.add(str(batch["device"][j]))
                self.devices.add(str(batch["device"][j]))
                if p.complete:
                    del pending[key]
                    self.finish(p)
            self.collect_dicom()
        while self.writing:
            self.collect_dicom(block=True)
        return list(pending.values())


def _stream(ray: Any, todo: list[SeriesWork], plan: Any, model_ref: Any, sha256: str, card_json: str,
            args: argparse.Namespace, cam_dir: Path | None) -> Iterator[dict[str, np.ndarray]]:
    """Ray Data pipeline: chunk rows -> CPU tasks -> model actors -> numpy batches."""
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    ctx.max_errored_blocks = -1  # a block lost after Ray's retries: its series are recorded as failed
    ctx.execution_options.preserve_order = False
    rows = list(chunk_rows(todo, cam_dir is not None))
    ds = ray.data.from_items(rows, override_num_blocks=len(rows))
    with warnings.catch_warnings():  # task retries are remote args (deprecated from Ray 2.64)
        warnings.simplefilter("ignore", DeprecationWarning)
        ds = _stages(ray, ds, plan, model_ref, sha256, card_json, args, cam_dir)
    yield from ds.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=1)


def _stages(ray: Any, ds: Any, plan: Any, model_ref: Any, sha256: str, card_json: str,
            args: argparse.Namespace, cam_dir: Path | None) -> Any:
    from medviewer.engine.scale.stages import InferActor, prepare_chunk

    ds = ds.map_batches(prepare_chunk, batch_size=1, batch_format="numpy", num_cpus=plan.decode_cpus,
                        fn_kwargs={"card_json": card_json, "retries": args.retries, "threads": 1},
                        max_retries=args.retries + 1)
    remote: dict[str, Any] = {"max_task_retries": args.retries + 1}
    if plan.gpus_per_worker > 0:
        remote["num_gpus"] = plan.gpus_per_worker
    device = None if args.device == "auto" else args.device
    ds = ds.map_batches(
        InferActor, batch_size=args.batch_size, batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=plan.workers), num_cpus=plan.cpus_per_worker,
        fn_constructor_kwargs={"model_ref": [model_ref], "sha256": sha256, "device": device,
                               "threads": plan.threads_per_worker, "batch_size": args.batch_size,
                               "cam_method": args.cam_method if cam_dir else None,
                               "cam_dir": str(cam_dir) if cam_dir else None, "retries": args.retries},
        **remote)
    return ds


def _start_writers(ray: Any, plan: Any, model_ref: Any, sha256: str, out: Path,
                   args: argparse.Namespace) -> list[Any]:
    """The --dicom-out writers: one per 4 model workers, on CPU, restarted if their process dies."""
    from medviewer.engine.scale.dicom import DicomWriter

    remote = ray.remote(num_cpus=0, max_restarts=2, max_task_retries=args.retries + 1)(DicomWriter)
    return [remote.remote([model_ref], sha256, str(out), args.dicom_out_slices, args.dicom_out_maps,
                          args.cam_method, args.aggregate, args.top_k, args.batch_size, args.retries)
            for _ in range(max(1, (plan.workers + 3) // 4))]


def _drive(ray: Any, run: _Run, todo: list[SeriesWork], plan: Any, model_ref: Any, card_json: str,
           cam_dir: Path | None) -> None:
    """Stream `todo` through the cluster; every series ends finished or recorded as failed."""
    args = run.args
    batches = _stream(ray, todo, plan, model_ref, run.sha256, card_json, args, cam_dir)
    try:
        lost = run.consume(batches, todo)
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # the pipeline itself failed (e.g. no model worker could start)
        log.exception("ray pipeline failed")
        while run.writing:  # what was finished before still gets its DICOM objects
            run.collect_dicom(block=True)
        reason = f"the Ray pipeline failed: {type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
        lost = [_Pending(w, np.zeros((0, 0)), np.zeros(0, bool), fatal=reason) for w in todo
                if not run.settled(w)]
    finally:
        batches.close()
    for p in lost:
        missing = int((~p.got).sum()) if p.got.size else len(p.work)
        run.fail(p.work, p.fatal or f"{missing} of {len(p.work)} slices never came back "
                                    f"(a worker or node was lost after {args.retries + 1} attempts)")


def _write_json(out: Any, head: dict[str, Any], entries: Iterator[dict[str, Any]]) -> None:
    """Write the document as json.dumps(doc, indent=2) would, one series at a time."""
    lines = json.dumps({**head, "series": []}, indent=2).splitlines()
    assert lines[-2].endswith('"series": []')
    out.write("\n".join(lines[:-2]) + "\n" + lines[-2][: -len("[]")] + "[")
    first = True
    for entry in entries:
        text = json.dumps(entry, indent=2)
        out.write(("\n" if first else ",\n") + "\n".join("    " + ln for ln in text.splitlines()))
        first = False
    out.write(("]" if first else "\n  ]") + "\n}\n")


def predict_ray(args: argparse.Namespace, json_out: Path | None, cam_dir: Path | None) -> int:
    """Run `medviewer predict --engine ray` with parsed, checked arguments."""
    import sys

    from medviewer.engine.catalog import resolve_model
    from medviewer.engine.modelfile import load_model
    from medviewer.engine.predictdoc import model_entry
    from medviewer.engine.scale import require_ray
    from medviewer.engine.scale.cluster import connect, plan as make_plan, quiet_native_output
    from medviewer.engine.scale.progress import Progress
    from medviewer.engine.scale.results import ResultsDir
    from medviewer.viewer import logs

    ray = require_ray()
    if args.workers is not None and args.workers < 1:
        raise UsageError("--workers must be at least 1")
    if args.gpus_per_worker is not None and args.gpus_per_worker < 0:
        raise UsageError("--gpus-per-worker must not be negative")
    if args.retries < 0:
        raise UsageError("--retries must not be negative")
    if args.device == "mps":
        raise UsageError("--engine ray runs on CPU or CUDA workers; use --device auto, cpu or cuda")

    model_path = resolve_model(args.model)
    data = model_path.read_bytes()
    sha256 = hashlib.sha256(data).hexdigest()
    model = load_model(model_path, device="cpu")  # checks the file here, before any worker starts
    results = None
    if args.results:  # checked before the (long) scan: a folder of another model is refused at once
        results = ResultsDir(Path(args.results).expanduser().absolute(), {
            "model": {**model_entry(model), "sha256": sha256, "file": model_path.name},
            "root": str(Path(args.path).expanduser().absolute()), "aggregate": args.aggregate,
            "top_k": args.top_k})
    started = time.perf_counter()
    print(f"{PROG}: scanning {args.path}", file=sys.stderr)
    archive = scan_archive(args.path)
    archive.require_images(args.path)
    work = [replace(archive.pick(args.series), index=0)] if args.series else archive.series
    skipped_files = [(s.path, s.reason) for s in archive.skipped]
    root = archive.root
    print(f"{PROG}: {len(work)} series, {sum(len(w) for w in work)} images in {archive.studies} "
          f"stud{'y' if archive.studies == 1 else 'ies'} ({time.perf_counter() - started:.1f} s)",
          file=sys.stderr)
    del archive
    dicom_out = Path(args.dicom_out).expanduser().absolute() if getattr(args, "dicom_out", None) else None
    settings = {"model": sha256, "aggregate": args.aggregate, "top_k": args.top_k,
                "cam": args.cam_method if cam_dir else None, "cam_dir": str(cam_dir) if cam_dir else None}
    if dicom_out is not None:  # a series is finished when its DICOM objects are written too
        settings["dicom"] = [str(dicom_out), args.dicom_out_slices, args.dicom_out_maps, args.cam_method]
    fingerprints = [w.fingerprint(settings) for w in work]
    todo = [w for w, fp in zip(work, fingerprints) if results is None or not results.is_done(w.name, fp)]
    done_before = [w for w in work if results is not None and results.is_done(w.name, fingerprints[w.index])]

    from medviewer.engine.predictdoc import relative

    for path, reason in skipped_files:
        print(f"{PROG}: skipped {relative(root, path)}: {reason}", file=sys.stderr)
    if done_before:
        print(f"{PROG}: {len(done_before)} of {len(work)} series already finished in {args.results}; "
              f"resuming with {len(todo)}", file=sys.stderr)
    progress = Progress(len(work), sum(len(w) for w in work), len(done_before),
                        sum(len(w) for w in done_before))
    run = _Run(args, model, sha256, work, fingerprints, results, progress)
    interrupted = False
    cluster = None
    try:
        with quiet_native_output(logs.log_dir() / "ray-driver.log") as user_stream:
            progress.stream = user_stream
            try:
                if todo:
                    progress.say(f"{PROG}: joining the Ray cluster at {args.ray_address}" if args.ray_address
                                 else f"{PROG}: starting a local Ray instance")
                    cluster = connect(args.ray_address)
                    plan = make_plan(cluster, args.workers, args.gpus_per_worker, args.device)
                    log.info("ray: %s cluster at %s, %g CPU, %g GPU, %d node(s); plan %s",
                             "private" if cluster.owned else "joined", cluster.address, cluster.cpus,
                             cluster.gpus, cluster.nodes, plan)
                    progress.say(f"{PROG}: {len(todo)} series ({sum(len(w) for w in todo)} images), "
                                 f"{plan.workers} model worker(s) with {plan.gpus_per_worker:g} GPU and "
                                 f"{plan.cpus_per_worker:g} CPU each; the cluster has {cluster.cpus:g} CPU, "
                                 f"{cluster.gpus:g} GPU in {cluster.nodes} node(s)")
                    model_ref = ray.put(data)
                    if dicom_out is not None:
                        run.writers = _start_writers(ray, plan, model_ref, sha256, dicom_out, args)
                    progress.start()
                    _drive(ray, run, todo, plan, model_ref, model.card.to_json(), cam_dir)
            finally:
                progress.stop()
                for writer in run.writers:
                    ray.kill(writer)
                if cluster is not None:
                    try:
                        cluster.close()
                    except Exception:
                        log.exception("ray shutdown failed")
    except KeyboardInterrupt:
        interrupted = True
    finally:
        if results is not None:
            results.write_tables()
    if interrupted:
        where = f"; finished series are in {args.results}, run the same command to resume" if results else ""
        print(f"{PROG}: interrupted after {progress.series + len(done_before)} of {len(work)} series{where}",
              file=sys.stderr)
        raise KeyboardInterrupt

    def entries() -> Iterator[dict[str, Any]]:
        for w in work:
            if w.index in run.errors:  # the classification when there is one, and why it failed
                entry = run.error_entries.get(w.index) or {
                    "series_uid": w.series_uid, "aggregate": {"method": _agg_name(args), "probabilities": {}},
                    "items": []}
                yield {**entry, "error": run.errors[w.index]}
            elif results is not None:
                yield results.load(w.name, fingerprints[w.index])["result"]
            else:
                yield run.entries[w.index]

    devices = results.add_devices(run.devices) if results is not None else sorted(run.devices)
    head = {"model": model_entry(model), "device": "; ".join(devices)}
    if args.json == "-":
        _write_json(sys.stdout, head, entries())
    elif json_out is not None:
        try:
            with open(json_out, "w", encoding="utf-8") as fh:
                _write_json(fh, head, entries())
        except OSError as exc:
            raise UsageError(f"{json_out}: cannot write ({exc.strerror})") from None
    if args.json != "-":
        for e in entries():
            agg = e["aggregate"]["probabilities"]
            best = max(agg, key=agg.get) if agg else "-"
            tail = f"failed: {e['error']}" if "error" in e else \
                f"{e['aggregate']['method']} -> {best} {agg.get(best, 0.0):.3f}"
            print(f"series {e['series_uid']}: {len(e['items'])} image(s), {tail}")
    finished = len(work) - len(run.errors)
    print(f"{PROG}: {finished} of {len(work)} series finished ({len(done_before)} from earlier runs), "
          f"{len(run.errors)} failed, {run.skipped_slices} slice(s) and {len(skipped_files)} file(s) skipped"
          + (f"; results in {args.results}" if args.results else ""), file=sys.stderr)
    if finished == 0:
        return EXIT_FAIL
    return EXIT_PARTIAL if (run.errors or run.skipped_slices or skipped_files) else EXIT_OK


def _agg_name(args: argparse.Namespace) -> str:
    from medviewer.engine.infer import aggregation_name

    return aggregation_name(args.aggregate, args.top_k)
