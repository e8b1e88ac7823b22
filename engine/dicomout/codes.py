"""Coded concepts of medviewer's AI reports (PS3.16; private scheme 99MEDVIEWER).

Standard codes where the standard has them (DCM, SCT, UCUM); a model's class
names, and the few concepts PS3.16 has no code for, use the private coding
scheme 99MEDVIEWER, declared in each object's Coding Scheme Identification
Sequence (PS3.3 C.12.1.1.3).
"""

from __future__ import annotations

import re

from highdicom.sr import CodedConcept

SCHEME = "99MEDVIEWER"
SCHEME_NAME = "medviewer AI results"


def private(value: str, meaning: str) -> CodedConcept:
    return CodedConcept(value=value, scheme_designator=SCHEME, meaning=meaning[:64])


def _code_value(text: str) -> str:
    # Code Value is SH (16 chars, no backslash); highdicom moves longer ones to Long Code Value.
    return re.sub(r"[\\\x00-\x1f]", "_", text).strip() or "_"


def class_code(name: str) -> CodedConcept:
    """The model's class `name` as a coded value (Finding, saliency class)."""
    return private(_code_value(name), name)


def probability_concept(name: str) -> CodedConcept:
    """Concept name of the NUM item 'probability of <class>'."""
    return private(_code_value(f"P:{name}"), f"Probability of {name}")


UNIT_ONE = CodedConcept(value="1", scheme_designator="UCUM", meaning="no units")
PROCEDURE = CodedConcept(value="363679005", scheme_designator="SCT", meaning="Imaging procedure")
FINDING = CodedConcept(value="121071", scheme_designator="DCM", meaning="Finding")
#: Derivation modifiers (TID 300 row "Derivation", CID 7464) per series aggregation.
DERIVATION = {
    "mean": CodedConcept(value="373098007", scheme_designator="SCT", meaning="Mean"),
    "max": CodedConcept(value="56851009", scheme_designator="SCT", meaning="Maximum"),
}


def derivation(method: str, k: int = 3) -> CodedConcept:
    """The Derivation code of a series aggregation ('mean', 'max', 'topk_mean')."""
    if method in DERIVATION:
        return DERIVATION[method]
    return private(f"TOPK_MEAN_{k}"[:16], f"Mean of the {k} highest slice values")


SERIES_RESULT = private("SERIES_RESULT", "AI series result")
SLICE_RESULT = private("SLICE_RESULT", "AI per-image result")
INTENDED_USE = private("INTENDED_USE", "Intended use of the AI model")
NOTICE = private("NOTICE", "Regulatory notice")
MODEL_SHA256 = private("MODEL_SHA256", "SHA-256 of the model file")
AGGREGATION = private("AGGREGATION", "Series aggregation method")
SALIENCY_METHOD = private("SALIENCY_METHOD", "Saliency map method")
SALIENCY_CLASS = private("SALIENCY_CLASS", "Saliency map class")


def saliency_method(name: str) -> CodedConcept:
    """The coded saliency method (Grad-CAM, Grad-CAM++, ...) of `engine.cam.CAM_METHODS`."""
    from medviewer.engine.cam import CAM_METHODS

    method = CAM_METHODS.get(name)
    return private(_code_value(name.upper())[:16], method.label if method is not None else name)
