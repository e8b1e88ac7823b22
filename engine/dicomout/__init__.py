"""AI results as standard DICOM objects (Qt-free): SR (TID 1500), Secondary Capture, Parametric Map.

    from medviewer.engine.dicomout import write_series_outputs
    paths = write_series_outputs(model, series, prediction, store, out_dir)

`write_series_outputs` is called once per analysed series by `medviewer
predict --dicom-out`, by the viewer's "Save AI results as DICOM" and by the
batch engine.  Every object keeps the source Patient and Study, gets Series
and SOP Instance UIDs derived from the source series, the model file and
the options (`uids`), so writing again replaces instead of duplicating, and a
Series Description naming the model.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from medviewer.engine.dicomout.result import ModelInfo, SeriesResult, file_sha256
from medviewer.engine.dicomout.source import DicomOutputError, SourceImage, series_label, source_images
from medviewer.engine.dicomout.uids import derive_uid, instance_uid, series_uid
from medviewer.viewer.errors import UsageError

if TYPE_CHECKING:  # pragma: no cover
    from medviewer.engine.dicomout.trust import TrustInfo
    from medviewer.engine.modelfile import LoadedModel
    from medviewer.engine.series import SeriesPrediction
    from medviewer.viewer.display import Window
    from medviewer.viewer.io.model import Series
    from medviewer.viewer.io.pixels import PixelStore

__all__ = ["DicomOutputError", "ModelInfo", "SeriesResult", "file_sha256", "output_series_numbers",
           "parse_slices", "select_slices", "series_result", "write_series_outputs"]

SLICE_SPEC = re.compile(r"^(top\d+|all|\d+(,\d+)*)$")


def parse_slices(spec: str) -> str:
    """Check a --dicom-out-slices value: 'top3' (any topN), 'all' or 1-based numbers 'K,K,...'."""
    text = str(spec).strip().lower().replace(" ", "")
    if not SLICE_SPEC.match(text) or text == "top0" or (text[0].isdigit() and "0" in text.split(",")):
        raise UsageError(f"--dicom-out-slices {spec!r}: use top3 (or topN), all, or image numbers "
                         f"counted from 1 as shown in the viewer, e.g. 5,12,30")
    return text


def select_slices(spec: str, result: SeriesResult) -> list[SourceImage]:
    """The analysed images a spec chooses, in display order.

    topN: the N images with the highest probability of the series' top class;
    all: every analysed image; K,K,...: images K (1-based display positions).
    """
    spec = parse_slices(spec)
    if spec == "all":
        return list(result.images)
    if spec.startswith("top"):
        n = int(spec[3:])
        col = result.probs[:, result.top]
        order = sorted(range(len(result.images)), key=lambda r: (-float(col[r]), r))[:n]
        return [result.images[r] for r in sorted(order)]
    wanted = [int(k) for k in spec.split(",")]
    by_index = {s.index: s for s in result.images}
    out = []
    for k in wanted:
        if not 1 <= k <= result.total:
            raise UsageError(f"--dicom-out-slices: image {k} is outside the series (1..{result.total})")
        if k - 1 in by_index and by_index[k - 1] not in out:
            out.append(by_index[k - 1])
    return sorted(out, key=lambda s: s.index)


def series_result(model: "LoadedModel", series: "Series", prediction: "SeriesPrediction", *,
                  aggregate: str = "mean", top_k: int = 3, cam_method: str = "gradcam") -> SeriesResult:
    """The SeriesResult of a `predict_series` result (failed images left out)."""
    from medviewer.engine.infer import aggregate as aggregate_probs

    sources = source_images(series)
    kept = [s for s in sources if s.index not in prediction.failed]
    if not kept:
        raise DicomOutputError(f"{series_label(series)}: no image could be analysed")
    probs = np.asarray(prediction.probs, np.float32)[[s.index for s in kept]]
    if np.isnan(probs).any():
        raise DicomOutputError(f"{series_label(series)}: the analysis is not complete")
    study_uid = str(kept[0].header.get("StudyInstanceUID"))
    return SeriesResult(series.series_uid, study_uid, series.number, series.description, kept,
                        len(series.items), probs, aggregate, top_k, aggregate_probs(probs, aggregate, top_k),
                        cam_method, dict(prediction.failed))


def output_series_numbers(source_number: int | None) -> dict[str, int]:
    """Series Numbers of the outputs: 90<source number><kind> (SR 1, SC 2, map 3)."""
    base = 9000 + 10 * ((source_number or 0) % 100)
    return {"sr": base + 1, "sc": base + 2, "pm": base + 3}


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.-]+", "_", text).strip("_")[:48] or "model"


def _write(ds: Any, path: Path) -> Path:
    tmp = path.with_name(path.name + ".tmp")
    try:
        ds.save_as(tmp, enforce_file_format=True)
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise DicomOutputError(f"{path}: cannot write ({exc.strerror or type(exc).__name__})") from None
    return path


def _cams(model: "LoadedModel", store: "PixelStore", series: "Series", result: SeriesResult,
          chosen: Sequence[SourceImage], prediction: "SeriesPrediction", batch_size: int,
          should_stop: Callable[[], bool] | None) -> dict[int, np.ndarray]:
    """Grad-CAM of the series' top class for `chosen` (maps already computed for it are reused)."""
    from medviewer.engine.cam import gradcam_images

    out: dict[int, np.ndarray] = {}
    have = prediction.cams
    todo = []
    for s in chosen:
        row = result.probs[result.position(s)]
        if have is not None and s.index < len(have) and have[s.index] is not None \
                and int(row.argmax()) == result.top:
            out[s.index] = have[s.index]
        else:
            todo.append(s)
    if todo:
        images = [(store.get(series.items[s.index]), store.meta(series.items[s.index])) for s in todo]
        maps = gradcam_images(model, images, class_index=result.top, method=result.cam_method,
                              batch_size=batch_size, should_stop=should_stop)
        out.update({s.index: m for s, m in zip(todo, maps)})
    return out


def write_series_outputs(model: "LoadedModel", series: "Series", prediction: "SeriesPrediction",
                         store: "PixelStore", out_dir: str | Path, *, slices: str = "top3",
                         maps: bool = False, cam_method: str = "gradcam",
                         model_path: str | Path | None = None, aggregate: str = "mean", top_k: int = 3,
                         window: "Window | None" = None, batch_size: int = 16,
                         notify: Callable[[str], None] | None = None,
                         should_stop: Callable[[], bool] | None = None,
                         trust: "TrustInfo | None" = None) -> list[Path]:
    """Write the SR, the Secondary Capture series and (with `maps`) the Parametric Map of one series.

    `prediction` is what `engine.series.predict_series` returned for `series.items`;
    `store` decodes the source images (the SC shows their grey levels through
    `viewer.display.render`, with `window`, default the file's own).  Files go to
    `out_dir/series-<number>-<uid hash>/<model>-{sr,sc-NNNN,pm}.dcm`; returns
    their paths.  A Parametric Map that cannot be made (no patient geometry) is
    reported through `notify(one line)` and left out; other problems raise
    DicomOutputError (one line naming the series).
    `trust` (engine.dicomout.trust.TrustInfo): the OOD check, input warnings, audit
    entry and reader's verdict for the SR; default: the OOD scores of `prediction`.
    """
    from medviewer import __version__
    from medviewer.engine.dicomout.sc import banner_lines, build_sc, compose
    from medviewer.engine.dicomout.sr import ReportBuilder
    from medviewer.engine.dicomout.trust import TrustInfo, add_trust
    from medviewer.viewer.display import render

    slices = parse_slices(slices)
    result = series_result(model, series, prediction, aggregate=aggregate, top_k=top_k, cam_method=cam_method)
    info = ModelInfo.from_model(model, model_path)
    software = f"medviewer {__version__}"
    opts = result.options()
    uid_sr = series_uid("sr", result.study_uid, series.series_uid, info.key, opts)
    uid_sc = series_uid("sc", result.study_uid, series.series_uid, info.key, opts)
    uid_pm = series_uid("pm", result.study_uid, series.series_uid, info.key, opts)
    numbers = output_series_numbers(series.number)
    folder = Path(out_dir) / f"series-{series.number if series.number is not None else 'x'}-" \
                             f"{derive_uid(series.series_uid)[-8:]}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DicomOutputError(f"{folder}: cannot create the folder ({exc.strerror})") from None
    stem = _slug(f"{info.name}-{info.version}")
    written: list[Path] = []

    chosen = select_slices(slices, result)
    pm_ok = True
    if maps:
        from medviewer.engine.dicomout.pmap import check_geometry

        try:
            check_geometry(result)
        except DicomOutputError as exc:
            pm_ok = False
            if notify:
                notify(str(exc))
    need = list(result.images) if maps and pm_ok else chosen
    cams = _cams(model, store, series, result, need, prediction, batch_size, should_stop)

    cls = info.classes[result.top]
    for number, src in enumerate(chosen, 1):
        ref = series.items[src.index]
        displayed = render(store.get(ref), store.meta(ref), window)
        pixels, scale, _band = compose(displayed, cams[src.index], banner_lines(info, result, src))
        win = "the file's own window" if window is None else f"window C {window.center:g} / W {window.width:g}"
        derivation = (f"{cam_method} Grad-CAM of class '{cls}' from {info.title} blended (opacity 0.4, jet) "
                      f"over the displayed grey levels ({win}), enlarged x{scale}, banner added")
        sc = build_sc(info, result, src, pixels, scale=scale, series_uid=uid_sc,
                      sop_uid=instance_uid(uid_sc, src.sop_instance_uid, src.frame),
                      series_number=numbers["sc"], instance_number=number, derivation=derivation,
                      software_version=software)
        written.append(_write(sc, folder / f"{stem}-sc-{src.index + 1:04d}.dcm"))

    builder = ReportBuilder(info, result, software_version=software)
    add_trust(builder, trust if trust is not None else TrustInfo.from_prediction(prediction))
    sr = builder.build(series_uid=uid_sr, sop_uid=instance_uid(uid_sr, "report"), series_number=numbers["sr"])
    written.insert(0, _write(sr, folder / f"{stem}-sr.dcm"))

    if maps and pm_ok:
        from medviewer.engine.dicomout.pmap import build_pm

        pm = build_pm(info, result, [cams[s.index] for s in result.images], series_uid=uid_pm,
                      sop_uid=instance_uid(uid_pm, "map"), series_number=numbers["pm"],
                      software_version=software)
        written.append(_write(pm, folder / f"{stem}-pm.dcm"))
    return written
