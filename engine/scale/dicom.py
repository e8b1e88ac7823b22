"""--dicom-out on Ray: each finished series' SR, Secondary Capture and Parametric Map.

The objects need the whole series (its top class, the slices it shows, the
Grad-CAM of that class), so they are written once the driver has assembled a
series, by a small pool of `DicomWriter` actors that hold the model (loaded
once, from the same bytes as the inference workers) and call the local
engine's own `engine.dicomout.write_series_outputs`.  A writer reads the
series' headers and the pixels it burns in from the archive itself (shared
storage, like the CPU tasks) and writes into --dicom-out (shared storage too).
Writers run on CPU; the Grad-CAMs they need are those of the chosen slices.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from medviewer.engine.scale.stages import RETRY_PAUSE_S, _limit_threads, _one_line, local_model_file

__all__ = ["DicomWriter", "summary_line"]


def summary_line(series_uid: str, paths: list[str]) -> str:
    """What the local engine prints for a series' DICOM results."""
    names = [Path(p).name for p in paths]
    n_sr = sum(n.endswith("-sr.dcm") for n in names)
    n_pm = sum(n.endswith("-pm.dcm") for n in names)
    return (f"series {series_uid}: DICOM results in {Path(paths[0]).parent} ({n_sr} SR, "
            f"{len(paths) - n_sr - n_pm} Secondary Capture, {n_pm} Parametric Map)")


class DicomWriter:
    """One model on the CPU; writes the DICOM results of whole series on request."""

    def __init__(self, model_ref: Any, sha256: str, out_dir: str, slices: str, maps: bool, cam_method: str,
                 aggregate: str, top_k: int, batch_size: int, retries: int, threads: int = 1) -> None:
        from medviewer.engine.modelfile import load_model

        _limit_threads(threads)
        path = local_model_file(model_ref, sha256)
        self.model = load_model(path, device="cpu", cache=False)  # model.path: its SHA-256 goes in the SR
        self.out_dir = Path(out_dir)
        self.options = {"slices": slices, "maps": maps, "cam_method": cam_method, "aggregate": aggregate,
                        "top_k": top_k, "batch_size": batch_size}
        self.retries = retries

    def write(self, series_uid: str, paths: list[str], frames: list[int | None], probs: np.ndarray,
              failed: dict[int, str], ood: tuple[np.ndarray, float] | None = None,
              trust: dict[str, Any] | None = None) -> dict[str, Any]:
        """{"paths": [...written], "notes": [...], "error": ""}; never raises."""
        from medviewer.engine.dicomout import DicomOutputError

        notes: list[str] = []
        error = ""
        for attempt in range(self.retries + 1):
            notes.clear()
            try:
                written = self._write(series_uid, paths, frames, probs, failed, notes.append, ood, trust or {})
                return {"paths": [str(p) for p in written], "notes": notes, "error": ""}
            except DicomOutputError as exc:  # about the data: the same again next time
                return {"paths": [], "notes": notes, "error": str(exc)}
            except Exception as exc:  # an I/O error, out of memory...
                error = f"{_one_line(exc)}, after {attempt + 1} attempt(s)"
                if attempt < self.retries:
                    time.sleep(RETRY_PAUSE_S * (attempt + 1))
        return {"paths": [], "notes": notes, "error": error}

    def _write(self, series_uid: str, paths: list[str], frames: list[int | None], probs: np.ndarray,
               failed: dict[int, str], notify: Any, ood: tuple[np.ndarray, float] | None,
               trust_fields: dict[str, Any]) -> list[Path]:
        from medviewer.engine.dicomout import DicomOutputError, write_series_outputs
        from medviewer.engine.series import SeriesPrediction
        from medviewer.viewer.io.pixels import PixelStore
        from medviewer.viewer.io.scan import scan_paths

        files = list(dict.fromkeys(paths))
        result = scan_paths(files, Path(files[0]).parent)
        series = next((s for s in result.all_series() if s.series_uid == series_uid), None)
        if series is None or [(str(r.path), r.frame) for r in series.items] != list(zip(paths, frames)):
            raise DicomOutputError(f"series {series_uid}: its files changed since the archive was scanned")
        pred = SeriesPrediction(np.asarray(probs, dtype=np.float32), None, {int(k): v for k, v in failed.items()},
                                None if ood is None else np.asarray(ood[0], dtype=np.float32),
                                None if ood is None else ood[1])
        with PixelStore(workers=1) as store:
            store.add_headers(series.headers)
            from medviewer.engine.dicomout.trust import TrustInfo

            trust = TrustInfo.from_prediction(pred, input_warnings=list(trust_fields.get("input_warnings") or []),
                                              audit_id=trust_fields.get("audit_id"))
            return write_series_outputs(self.model, series, pred, store, self.out_dir, notify=notify,
                                        trust=trust, **self.options)
