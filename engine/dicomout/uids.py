"""Deterministic UIDs for medviewer's AI result objects (PS3.5 9: UID encoding).

A result object's Series and SOP Instance UIDs are derived from what defines
its content: the source study and series, the model file (SHA-256) and the
options that change the content (aggregation, Grad-CAM method).  Running the
same model with the same options on the same series again gives the same
UIDs, so a PACS replaces the earlier objects instead of storing duplicates;
another model or other options give a new series.
"""

from __future__ import annotations

from pydicom.uid import generate_uid

# pydicom's UID root with the SHA-512 of the parts as suffix (generate_uid
# with entropy sources is deterministic: PS3.5 B.2 "UUID derived" style).
NAMESPACE = "medviewer-ai-results/1"


def derive_uid(*parts: object) -> str:
    """A UID that depends only on `parts` (each turned into text)."""
    return str(generate_uid(entropy_srcs=[NAMESPACE, *(str(p) for p in parts)]))


def series_uid(kind: str, study_uid: str, source_series_uid: str, model_key: str, options: str) -> str:
    """Series Instance UID of one kind of output ("sr", "sc", "pm") for one source series."""
    return derive_uid("series", kind, study_uid, source_series_uid, model_key, options)


def instance_uid(output_series_uid: str, *source: object) -> str:
    """SOP Instance UID of one object of an output series (e.g. per source SOP Instance + frame)."""
    return derive_uid("instance", output_series_uid, *source)
