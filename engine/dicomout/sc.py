"""Secondary Capture images with the Grad-CAM overlay and a banner burned in (PS3.3 A.8.1).

The image is what the viewer shows: the source's grey levels through the
display pipeline (`medviewer.viewer.display.render`: modality LUT, VOI window,
MONOCHROME1 inversion), the Grad-CAM heat map blended on top
(`medviewer.engine.overlay.blend`), enlarged by a whole factor (nearest
neighbour, so every displayed grey level is kept) until the banner is
legible, with a banner band above the image naming the model, its version,
its intended use (and the "not validated" statement), the Grad-CAM class and
the probabilities.  Burned In Annotation is YES (PS3.3 C.7.6.1.1.11); Source
Image Sequence references the source image and frame (C.7.6.1.1.4).
"""

from __future__ import annotations

import math

import cv2
import highdicom as hd
import numpy as np
from pydicom import Dataset

from medviewer.engine.dicomout import codes
from medviewer.engine.dicomout.result import ModelInfo, SeriesResult
from medviewer.engine.dicomout.source import SourceImage, ascii_text, laterality, patient_study

MIN_WIDTH = 512          # enlarge small images up to this width (whole factors only)
MAX_SCALE = 16
FONT = cv2.FONT_HERSHEY_SIMPLEX
WHITE, YELLOW, ORANGE = (255, 255, 255), (255, 220, 0), (255, 140, 0)
PURPOSE_SOURCE = ("121322", "DCM", "Source image for image processing operation")


def scale_for(cols: int) -> int:
    """Whole enlargement factor so the banner text fits (1 for images >= MIN_WIDTH)."""
    return 1 if cols >= MIN_WIDTH else min(MAX_SCALE, math.ceil(MIN_WIDTH / max(cols, 1)))


def banner_lines(model: ModelInfo, result: SeriesResult, src: SourceImage) -> list[tuple[str, tuple[int, int, int]]]:
    """The banner's text lines and colours (ASCII; wrapped to the width later)."""
    probs = result.probs[result.position(src)]
    top = int(probs.argmax())
    cls = model.classes[result.top]
    lines = [
        (f"AI RESULT - {model.name} {model.version} (medviewer)", YELLOW),
        (f"{codes.saliency_method(result.cam_method).meaning} of '{cls}' | {src.label} of "
         f"{result.total}: {model.classes[top]} {probs[top]:.3f}"
         + (f", {cls} {probs[result.top]:.3f}" if top != result.top else ""), WHITE),
        (f"Series ({result.aggregation_name}): {cls} {result.series_probs[result.top]:.3f}", WHITE),
        (f"Intended use: {model.intended_use}", WHITE),
    ]
    if model.notice:
        lines.append((model.notice, ORANGE))
    return [(ascii_text(t), c) for t, c in lines]


def _wrap(text: str, width: int, font_scale: float, thickness: int) -> list[str]:
    words, out, line = text.split(" "), [], ""
    for word in words:
        trial = f"{line} {word}".strip()
        if cv2.getTextSize(trial, FONT, font_scale, thickness)[0][0] <= width or not line:
            line = trial
        else:
            out.append(line)
            line = word
    if line:
        out.append(line)
    return out


def draw_banner(width: int, lines: list[tuple[str, tuple[int, int, int]]]) -> np.ndarray:
    """A black band `width` pixels wide holding the wrapped lines, uint8 RGB."""
    font_scale = min(1.0, max(0.4, width / 1100))
    thickness = 2 if font_scale >= 0.8 else 1
    margin = max(4, int(8 * font_scale))
    (_, text_h), base = cv2.getTextSize("Ag", FONT, font_scale, thickness)
    step = text_h + base + max(3, int(6 * font_scale))
    wrapped = [(part, colour) for text, colour in lines
               for part in _wrap(text, width - 2 * margin, font_scale, thickness)]
    band = np.zeros((margin * 2 + step * len(wrapped), width, 3), np.uint8)
    y = margin + text_h
    for text, colour in wrapped:
        cv2.putText(band, text, (margin, y), FONT, font_scale, colour, thickness, cv2.LINE_AA)
        y += step
    band[-2:, :] = YELLOW  # a rule between banner and image
    return band


def compose(displayed: np.ndarray, cam: np.ndarray, lines: list[tuple[str, tuple[int, int, int]]],
            opacity: float = 0.4, colormap: str = "jet") -> tuple[np.ndarray, int, int]:
    """(RGB pixels, enlargement factor, banner rows): banner above the blended, enlarged image."""
    from medviewer.engine.overlay import blend

    blended = blend(displayed, cam, opacity=opacity, name=colormap)
    scale = scale_for(blended.shape[1])
    if scale > 1:
        blended = cv2.resize(blended, (blended.shape[1] * scale, blended.shape[0] * scale),
                             interpolation=cv2.INTER_NEAREST)
    band = draw_banner(blended.shape[1], lines)
    return np.ascontiguousarray(np.concatenate([band, blended], axis=0)), scale, band.shape[0]


def patient_orientation(header: Dataset) -> list[str] | None:
    """Row and column directions as PS3.3 C.7.6.1.1.1 letters, from Image Orientation (Patient)."""
    iop = header.get("ImageOrientationPatient")
    if iop is None or len(iop) != 6:
        po = header.get("PatientOrientation")
        return [str(v) for v in po] if po is not None and len(po) == 2 else None

    def letters(v) -> str:
        names = (("L", "R"), ("P", "A"), ("H", "F"))
        order = np.argsort(-np.abs(np.asarray(v, float)))
        out = ""
        for axis in order:
            if abs(float(v[axis])) > 1e-3:
                out += names[axis][0] if v[axis] > 0 else names[axis][1]
        return out[:3] or "L"

    return [letters(iop[:3]), letters(iop[3:])]


def build_sc(model: ModelInfo, result: SeriesResult, src: SourceImage, pixels: np.ndarray, *,
             scale: int, series_uid: str, sop_uid: str, series_number: int, instance_number: int,
             derivation: str, software_version: str = "") -> hd.sc.SCImage:
    """The Secondary Capture Image object for one composed RGB image."""
    ps = patient_study(src.header)
    sc = hd.sc.SCImage(
        pixel_array=pixels,
        photometric_interpretation="RGB",
        bits_allocated=8,
        coordinate_system="PATIENT",
        study_instance_uid=str(ps.StudyInstanceUID),
        series_instance_uid=series_uid,
        series_number=series_number,
        sop_instance_uid=sop_uid,
        instance_number=instance_number,
        manufacturer="medviewer",
        patient_id=str(ps.PatientID),
        patient_name=ps.PatientName,
        patient_birth_date=str(ps.PatientBirthDate),
        patient_sex=str(ps.PatientSex) if str(ps.PatientSex) in ("M", "F", "O") else None,
        accession_number=str(ps.AccessionNumber),
        study_id=str(ps.StudyID),
        study_date=str(ps.StudyDate) or None,
        study_time=str(ps.StudyTime) or None,
        referring_physician_name=ps.ReferringPhysicianName,
        patient_orientation=("L", "P"),  # replaced below by the source's own
        series_description=f"AI Grad-CAM: {model.title}"[:64],
        manufacturer_model_name=f"{model.name} {model.version}"[:64],
        software_versions=software_version or None,
        specific_character_set="ISO_IR 192",
    )
    for key in ("StudyDescription", "IssuerOfPatientID", "PatientAge"):
        if key in ps:
            sc[key] = ps[key]
    if not sc.get("PatientSex"):
        sc.PatientSex = ""
    orientation = patient_orientation(src.header)
    sc.PatientOrientation = orientation if orientation else ""
    spacing = src.header.get("PixelSpacing")
    if spacing is not None and len(spacing) == 2 and scale >= 1:
        sc.PixelSpacing = [f"{float(v) / scale:.6g}" for v in spacing]
    sc.Laterality = laterality(src.header)
    sc.ConversionType = "WSD"  # workstation (PS3.3 C.8.6.1)
    sc.SecondaryCaptureDeviceManufacturer = "medviewer"
    sc.SecondaryCaptureDeviceManufacturerModelName = f"{model.name} {model.version}"[:64]
    if software_version:
        sc.SecondaryCaptureDeviceSoftwareVersions = software_version
    sc.BurnedInAnnotation = "YES"
    sc.ImageComments = ascii_text(f"AI result of {model.title} ({model.intended_use}); "
                                  f"Grad-CAM and text burned in", 10240)
    sc.DerivationDescription = derivation[:1024]
    item = Dataset()
    item.ReferencedSOPClassUID = src.sop_class_uid
    item.ReferencedSOPInstanceUID = src.sop_instance_uid
    if src.frame:
        item.ReferencedFrameNumber = src.frame
    purpose = Dataset()
    purpose.CodeValue, purpose.CodingSchemeDesignator, purpose.CodeMeaning = PURPOSE_SOURCE
    item.PurposeOfReferenceCodeSequence = [purpose]
    sc.SourceImageSequence = [item]
    return sc
