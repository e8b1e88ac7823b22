"""Grad-CAM maps as a Parametric Map (PS3.3 A.75), built with highdicom.

One frame per analysed image, at the source image's own pixel grid and
geometry (plane positions, orientation and pixel measures come from the
source headers); 32-bit float values in [0, 1] mapped to real-world values
by the identity (Real World Value Mapping, unit UCUM "1").  The map of every
frame is for the series' top class, so the volume has one meaning.
"""

from __future__ import annotations

import highdicom as hd
import numpy as np

from medviewer.engine.dicomout import codes
from medviewer.engine.dicomout.result import ModelInfo, SeriesResult
from medviewer.engine.dicomout.source import DicomOutputError, SourceImage, laterality, series_label_text

GEOMETRY = ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "FrameOfReferenceUID")


def check_geometry(result: SeriesResult) -> None:
    """DicomOutputError unless every source is a single-frame image with patient geometry."""
    where = series_label_text(result.series_number, result.description, result.series_uid)
    if any(s.frame is not None for s in result.images):
        raise DicomOutputError(f"{where}: no Parametric Map for multi-frame sources (not supported yet)")
    for s in result.images:
        missing = [k for k in GEOMETRY if k not in s.header]
        if missing:
            raise DicomOutputError(f"{where}: no Parametric Map: {s.label} has no {missing[0]} "
                                   f"(a map needs the source's patient geometry)")
    frames = {str(s.header.FrameOfReferenceUID) for s in result.images}
    sizes = {(int(s.header.Rows), int(s.header.Columns)) for s in result.images}
    if len(frames) > 1 or len(sizes) > 1:
        what = f"{len(frames)} Frames of Reference" if len(frames) > 1 else f"{len(sizes)} image sizes"
        raise DicomOutputError(f"{where}: no Parametric Map: the images have {what} (one volume needs one)")


def build_pm(model: ModelInfo, result: SeriesResult, maps: list[np.ndarray], *, series_uid: str,
             sop_uid: str, series_number: int, software_version: str = "") -> hd.pm.ParametricMap:
    """The Parametric Map of `maps` (one float32 [0, 1] map per `result.images`, same order)."""
    check_geometry(result)
    if len(maps) != len(result.images):
        raise ValueError("one map per analysed image is needed")
    cls = model.classes[result.top]
    method = codes.saliency_method(result.cam_method)
    mapping = hd.pm.RealWorldValueMapping(
        lut_label="SALIENCY",
        lut_explanation=f"{method.meaning} of class {cls}"[:64],
        unit=codes.UNIT_ONE,
        value_range=(0.0, 1.0),
        slope=1.0,
        intercept=0.0,
        quantity_definition=codes.private("SALIENCY", f"{method.meaning} saliency of {cls}"),
    )
    sources = [_source_header(s) for s in result.images]
    pixels = np.stack([np.clip(np.asarray(m, np.float32), 0.0, 1.0) for m in maps])
    pm = hd.pm.ParametricMap(
        source_images=sources,
        pixel_array=pixels,
        series_instance_uid=series_uid,
        series_number=series_number,
        sop_instance_uid=sop_uid,
        instance_number=1,
        manufacturer="medviewer",
        manufacturer_model_name=f"{model.name} {model.version}"[:64],
        software_versions=software_version or "unknown",
        device_serial_number=(model.sha256 or "none")[:64],
        contains_recognizable_visual_features=False,
        real_world_value_mappings=[mapping],
        # LINEAR_EXACT (PS3.3 C.11.2.1.3.2): [0, 1] maps onto the whole grey range (LINEAR with
        # width 1 would be a step at 0 for float data)
        # (lists: highdicom 0.28 splits a lone explanation string into characters)
        voi_lut_transformations=[hd.VOILUTTransformation(window_center=[0.5], window_width=[1.0],
                                                         window_explanation=["SALIENCY 0-1"],
                                                         voi_lut_function="LINEAR_EXACT")],
        content_description=f"{method.meaning} of '{cls}'"[:64],
        content_label="GRADCAM",
        series_description=f"AI Grad-CAM map: {model.title}"[:64],
    )
    pm.Laterality = laterality(result.images[0].header)
    return pm


def _source_header(src: SourceImage):
    """highdicom reads geometry and patient/study attributes from the source headers."""
    import copy

    ds = copy.copy(src.header)
    for key in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
                "ReferringPhysicianName", "StudyID", "AccessionNumber"):
        if key not in ds:
            setattr(ds, key, "")
    return ds
