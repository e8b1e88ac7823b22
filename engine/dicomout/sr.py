"""The AI result as a Comprehensive SR following TID 1500 (PS3.16 A.35.1), built with highdicom.

Document tree::

    Imaging Measurement Report (TID 1500)
      Language, Observation Context (device observer = the model, TID 1004), Procedure reported
      Image Library (TID 1600): the analysed source images
      Imaging Measurements
        Measurement Group (TID 1501) "AI series result"
          Tracking Identifier + UID, Finding = the series' top class,
          Algorithm Identification (TID 4019): model name, version, parameters
            (architecture, SHA-256 of the model file, aggregation, Grad-CAM),
          NUM "Probability of <class>" per class, UCUM unit "1",
            Derivation = the aggregation (Mean / Maximum / top-k mean),
          CODE Saliency map method (Grad-CAM / Grad-CAM++), CODE Saliency map class
        Measurement Group (TID 1501) per analysed image
          Tracking Identifier "image k of N", Finding = the image's top class,
          NUM "Probability of <class>" per class, Source image (IMAGE, + frame)
      Qualitative Evaluations
        TEXT Intended use, TEXT Regulatory notice ("not validated" statement)

`ReportBuilder` keeps the extension points other result kinds fill before
`build()` (e.g. a reader's accept/reject verdict, out-of-distribution scores):
`add_report_text`, `add_report_code`, `add_series_measurement`,
`add_series_evaluation`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import highdicom as hd
from highdicom.sr import CodedConcept
from pydicom.sr.codedict import codes as std

from medviewer.engine.dicomout import codes
from medviewer.engine.dicomout.result import ModelInfo, SeriesResult
from medviewer.engine.dicomout.source import SourceImage, evidence_dataset
from medviewer.engine.dicomout.uids import derive_uid

QUALITATIVE_EVALUATIONS = CodedConcept(value="C0034375", scheme_designator="UMLS",
                                       meaning="Qualitative Evaluations")
MANUFACTURER = "medviewer"
#: Image Library entries are written up to this many images (TID 1600 is descriptive only).
IMAGE_LIBRARY_LIMIT = 2000


@dataclass
class ReportBuilder:
    """Collects the content of one series' AI report; `build()` makes the SR document."""

    model: ModelInfo
    result: SeriesResult
    software_version: str = ""
    report_items: list[hd.sr.ContentItem] = field(default_factory=list)
    series_measurements: list[hd.sr.Measurement] = field(default_factory=list)
    series_evaluations: list[hd.sr.QualitativeEvaluation] = field(default_factory=list)

    # -- extension points -----------------------------------------------------------
    def add_report_text(self, concept: CodedConcept, text: str) -> None:
        """A TEXT item in the report's Qualitative Evaluations container (TID 1500)."""
        self.report_items.append(hd.sr.TextContentItem(
            name=concept, value=text[:1024], relationship_type=hd.sr.RelationshipTypeValues.CONTAINS))

    def add_report_code(self, concept: CodedConcept, value: CodedConcept) -> None:
        """A CODE item in the report's Qualitative Evaluations container (e.g. a reader's verdict)."""
        self.report_items.append(hd.sr.CodeContentItem(
            name=concept, value=value, relationship_type=hd.sr.RelationshipTypeValues.CONTAINS))

    def add_series_measurement(self, concept: CodedConcept, value: float,
                               unit: CodedConcept = codes.UNIT_ONE) -> None:
        """A NUM item (TID 300) in the series result group (e.g. an out-of-distribution score)."""
        self.series_measurements.append(hd.sr.Measurement(name=concept, value=float(value), unit=unit))

    def add_series_evaluation(self, concept: CodedConcept, value: CodedConcept) -> None:
        """A CODE qualitative evaluation in the series result group."""
        self.series_evaluations.append(hd.sr.QualitativeEvaluation(name=concept, value=value))

    # -- content ----------------------------------------------------------------------
    def algorithm(self) -> hd.sr.AlgorithmIdentification:
        m, r = self.model, self.result
        params = [f"architecture: {m.architecture}", f"input size: {m.input_size} px",
                  f"model file SHA-256: {m.sha256 or 'unknown (no model file)'}",
                  f"series aggregation: {r.aggregation_name} over {len(r.images)} of {r.total} images",
                  f"saliency: {codes.saliency_method(r.cam_method).meaning} of class "
                  f"'{m.classes[r.top]}'"]
        return hd.sr.AlgorithmIdentification(name=m.name[:64], version=m.version[:64],
                                             parameters=[p[:1024] for p in params],
                                             manufacturer=MANUFACTURER)

    def _probabilities(self, probs, derivation: CodedConcept | None = None) -> list[hd.sr.Measurement]:
        return [hd.sr.Measurement(name=codes.probability_concept(c), value=float(f"{float(p):.6g}"),
                                  unit=codes.UNIT_ONE, derivation=derivation)
                for c, p in zip(self.model.classes, probs)]

    def series_group(self, sr_uid: str) -> hd.sr.MeasurementsAndQualitativeEvaluations:
        r, m = self.result, self.model
        evaluations = [
            hd.sr.QualitativeEvaluation(codes.SALIENCY_METHOD, codes.saliency_method(r.cam_method)),
            hd.sr.QualitativeEvaluation(codes.SALIENCY_CLASS, codes.class_code(m.classes[r.top])),
            *self.series_evaluations,
        ]
        return hd.sr.MeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(
                uid=derive_uid(sr_uid, "series-group"), identifier="AI series result"),
            finding_type=codes.class_code(m.classes[r.top]),
            algorithm_id=self.algorithm(),
            measurements=[*self._probabilities(r.series_probs, codes.derivation(r.aggregation, r.top_k)),
                          *self.series_measurements],
            qualitative_evaluations=evaluations,
        )

    def image_group(self, sr_uid: str, src: SourceImage) -> hd.sr.MeasurementsAndQualitativeEvaluations:
        r, m = self.result, self.model
        probs = r.probs[r.position(src)]
        top = int(probs.argmax())
        frames = [src.frame] if src.frame else None
        return hd.sr.MeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(
                uid=derive_uid(sr_uid, "image-group", src.sop_instance_uid, src.frame),
                identifier=f"{src.label} of {r.total}"),
            finding_type=codes.class_code(m.classes[top]),
            measurements=self._probabilities(probs),
            source_images=[hd.sr.SourceImageForMeasurementGroup(src.sop_class_uid, src.sop_instance_uid,
                                                                frames)],
        )

    def content(self, sr_uid: str) -> hd.sr.MeasurementReport:
        m, r = self.model, self.result
        device = hd.sr.ObserverContext(
            observer_type=std.DCM.Device,
            observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
                uid=derive_uid("device", m.key), name=m.name[:64], manufacturer_name=MANUFACTURER,
                model_name=f"{m.name} {m.version}"[:64]))
        report = hd.sr.MeasurementReport(
            observation_context=hd.sr.ObservationContext(observer_device_context=device),
            procedure_reported=codes.PROCEDURE,
            imaging_measurements=[self.series_group(sr_uid),
                                  *(self.image_group(sr_uid, s) for s in r.images)],
        )
        items = report[0].ContentSequence
        at = next(i for i, it in enumerate(items) if it.name == std.DCM.ImagingMeasurements)
        for j, item in enumerate(image_library(r.images)):
            items.insert(at + j, item)
        texts = [hd.sr.TextContentItem(name=codes.INTENDED_USE, value=m.intended_use,
                                       relationship_type=hd.sr.RelationshipTypeValues.CONTAINS)]
        if m.notice:
            texts.append(hd.sr.TextContentItem(name=codes.NOTICE, value=m.notice,
                                               relationship_type=hd.sr.RelationshipTypeValues.CONTAINS))
        container = hd.sr.ContainerContentItem(name=QUALITATIVE_EVALUATIONS,
                                               relationship_type=hd.sr.RelationshipTypeValues.CONTAINS)
        container.ContentSequence = hd.sr.ContentSequence([*texts, *self.report_items])
        report[0].ContentSequence.append(container)
        return report

    def build(self, *, series_uid: str, sop_uid: str, series_number: int,
              instance_number: int = 1) -> hd.sr.ComprehensiveSR:
        """The SR document (Comprehensive SR, PS3.3 A.35.3); patient and study of the source."""
        m, r = self.model, self.result
        evidence = [evidence_dataset(s) for s in r.images]
        sr = hd.sr.ComprehensiveSR(
            evidence=evidence,
            content=self.content(sop_uid),
            series_instance_uid=series_uid,
            series_number=series_number,
            sop_instance_uid=sop_uid,
            instance_number=instance_number,
            manufacturer=MANUFACTURER,
            is_complete=True,
            is_final=False,
            is_verified=False,
            series_description=f"AI report: {m.title}"[:64],
            manufacturer_model_name=f"{m.name} {m.version}"[:64],
            software_versions=self.software_version or None,
            coding_schemes=[hd.coding_schemes.CodingSchemeIdentificationItem(
                designator=codes.SCHEME, name=codes.SCHEME_NAME,
                responsible_organization=MANUFACTURER)],
        )
        return sr


def image_library(images: list[SourceImage]) -> list[hd.sr.ContentItem]:
    """TID 1600 Image Library of the source images (one entry per file).

    highdicom's entries carry the TID 1602-1604 descriptors (modality, size,
    geometry); when a source lacks what they need (e.g. a projection image
    without Imager Pixel Spacing), the library lists the images with their
    references only, which TID 1601 allows.
    """
    seen: dict[str, SourceImage] = {}
    for s in images[:IMAGE_LIBRARY_LIMIT]:
        seen.setdefault(s.sop_instance_uid, s)
    if not seen:
        return []
    try:
        return list(hd.sr.ImageLibrary([s.header for s in seen.values()]))
    except (AttributeError, KeyError, ValueError, TypeError):
        pass
    group = hd.sr.ContainerContentItem(name=std.DCM.ImageLibraryGroup,
                                       relationship_type=hd.sr.RelationshipTypeValues.CONTAINS)
    group.ContentSequence = hd.sr.ContentSequence([
        hd.sr.ImageContentItem(name=CodedConcept("260753009", "SCT", "Source"),
                               referenced_sop_class_uid=s.sop_class_uid,
                               referenced_sop_instance_uid=s.sop_instance_uid,
                               relationship_type=hd.sr.RelationshipTypeValues.CONTAINS)
        for s in seen.values()])
    library = hd.sr.ContainerContentItem(name=std.DCM.ImageLibrary,
                                         relationship_type=hd.sr.RelationshipTypeValues.CONTAINS)
    library.ContentSequence = hd.sr.ContentSequence([group])
    return [library]
