"""Trust signals in the AI results dock: out-of-distribution and input-check warnings,
calibration and operating point of the model, the reader's verdict (IHE AIRAI).

Widgets only show what the controller hands them (plain values); the verdict bar
emits the reader's choice and the controller writes it to the audit log.
"""

from __future__ import annotations

import html
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QLineEdit, QPushButton, QSizePolicy, QVBoxLayout, QWidget

UNLIKE = "unlike the images this model was trained on"
NO_OOD_CHECK = ("This model has no out-of-distribution check (an older model file): "
                "results on images unlike its training images are not flagged.")
WARN_STYLE = "background:#ffd7d2; color:#7a0b00; padding:4px; border:1px solid #d0341c; font-weight:bold;"
CAUTION_STYLE = "background:#fff3b0; color:#5a4500; padding:4px; border:1px solid #d8b400;"
NOTE_STYLE = "color:#777; font-style:italic;"
VERDICT_LABELS = {"accepted": "Accepted", "rejected": "Rejected", "modified": "Modified"}


def _label(name: str, style: str) -> QLabel:
    lbl = QLabel("")
    lbl.setObjectName(name)
    lbl.setWordWrap(True)
    lbl.setTextFormat(Qt.TextFormat.RichText)
    lbl.setStyleSheet(style)
    lbl.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Minimum)   # never squeezed
    lbl.setVisible(False)
    return lbl


def calibration_text(card: Any) -> str:
    """Calibration and operating point of a model, for the panel and the card view."""
    m = card.metrics or {}
    op = card.operating_point or {}
    parts = []
    if card.temperature != 1.0 or "ece" in m:
        cal = f"calibrated (temperature {card.temperature:.2f})" if card.temperature != 1.0 else "temperature 1"
        if isinstance(m.get("ece"), (int, float)):
            cal += f", ECE {m['ece']:.3f}"
            if isinstance(m.get("ece_uncalibrated"), (int, float)):
                cal += f" ({m['ece_uncalibrated']:.3f} before calibration)"
        parts.append(cal)
    else:
        parts.append("not calibrated (no temperature in the card)")
    if op:
        rule = op.get("rule", "top class")
        acc = f", test accuracy {op['accuracy']:.3f}" if isinstance(op.get("accuracy"), (int, float)) else ""
        sens = op.get("sensitivity") or {}
        spec = op.get("specificity") or {}
        per = "; ".join(f"{html.escape(c)} sens {sens[c]:.2f} / spec {spec[c]:.2f}" for c in sens
                        if isinstance(sens.get(c), (int, float)) and isinstance(spec.get(c), (int, float)))
        parts.append(f"operating point: {html.escape(str(rule))}{acc} ({op.get('images', '?')} test images)"
                     + (f"<br>{per}" if per else ""))
    if card.ood:
        fit = card.ood.get("fit", {})
        ood = f"out-of-distribution check: flags about {1 - card.ood.get('quantile', 0.95):.0%} of validation images"
        if isinstance(fit.get("test_flagged"), (int, float)):
            ood += f", {fit['test_flagged']:.1%} of test images"
        if isinstance(fit.get("probe_auroc"), (int, float)):
            ood += f"; AUROC {fit['probe_auroc']:.3f} against {fit.get('probe_images', '?')} far-OOD probes"
        parts.append(ood)
    else:
        parts.append("<i>no out-of-distribution check</i>")
    trained = card.trained_on or {}
    if trained:
        parts.append("trained on: " + ", ".join(f"{k.replace('_', ' ')} {html.escape('/'.join(trained[k]))}"
                                                for k in ("modality", "photometric", "body_part") if trained.get(k)))
    else:
        parts.append("<i>the card does not say what images it was trained on (no input check)</i>")
    return "<br>".join(parts)


def compact_text(card: Any) -> str:
    """One or two lines for the results panel (the model list shows `calibration_text`)."""
    m = card.metrics or {}
    op = card.operating_point or {}
    bits = []
    if isinstance(m.get("ece"), (int, float)):
        before = f" ({m['ece_uncalibrated']:.3f} uncalibrated)" if isinstance(m.get("ece_uncalibrated"),
                                                                             (int, float)) else ""
        bits.append(f"ECE {m['ece']:.3f}{before}, temperature {card.temperature:.2f}")
    elif card.temperature != 1.0:
        bits.append(f"temperature {card.temperature:.2f}")
    else:
        bits.append("not calibrated")
    if isinstance(op.get("accuracy"), (int, float)):
        bits.append(f"operating point: top class, test accuracy {op['accuracy']:.3f} ({op.get('images', '?')} images)")
    trained = card.trained_on or {}
    seen = [trained[k][0] if len(trained.get(k) or []) == 1 else "/".join(trained.get(k) or [])
            for k in ("modality", "body_part") if trained.get(k)]
    bits.append("trained on " + " ".join(html.escape(v) for v in seen) if seen else "training images not described")
    return " &middot; ".join(bits)


class TrustPanel(QWidget):
    """Warnings and model facts shown with the probabilities (object names for tests)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("ai_trust")
        self.input_warning = _label("ai_input_warning", CAUTION_STYLE)
        self.slice_warning = _label("ai_ood_slice", WARN_STYLE)
        self.series_warning = _label("ai_ood_series", WARN_STYLE)
        self.no_check = _label("ai_ood_none", NOTE_STYLE)
        self.no_check.setText(NO_OOD_CHECK)
        self.model_facts = _label("ai_model_facts", "color:#555;")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        for w in (self.input_warning, self.slice_warning, self.series_warning, self.no_check, self.model_facts):
            lay.addWidget(w)

    def set_model(self, card: Any) -> None:
        why = "an ensemble" if getattr(card, "members", None) else "an older model file"
        self.no_check.setText(NO_OOD_CHECK.replace("an older model file", why))
        self.no_check.setVisible(not card.ood)
        self.model_facts.setText(compact_text(card))
        self.model_facts.setToolTip(calibration_text(card))
        self.model_facts.setVisible(True)
        self.clear()

    def clear(self) -> None:
        for w in (self.input_warning, self.slice_warning, self.series_warning):
            w.setText("")
            w.setVisible(False)

    def set_input_warnings(self, lines: list[str]) -> None:
        self.input_warning.setText("<b>Input check:</b> " + "<br>".join(html.escape(x) for x in lines)
                                   + "<br>Results may not apply to these images." if lines else "")
        self.input_warning.setVisible(bool(lines))

    def set_slice(self, score: float | None, threshold: float | None, where: str = "") -> None:
        """The displayed slice's OOD score; a warning when it is above the threshold."""
        flagged = score is not None and threshold is not None and score > threshold
        if flagged:
            self.slice_warning.setText(
                f"&#9888; {html.escape(where.capitalize() or 'This image')} is {UNLIKE} "
                f"(out-of-distribution score {score:.2f}, threshold {threshold:.2f}). "
                "Do not rely on these probabilities.")
        self.slice_warning.setVisible(flagged)
        self.slice_warning.setToolTip("" if score is None else f"OOD score {score:.3f} (threshold {threshold:.3f})")

    def set_series(self, flagged: int, checked: int, total: int) -> None:
        """How many analysed slices of the series were flagged."""
        show = flagged > 0
        if show:
            frac = flagged / max(checked, 1)
            self.series_warning.setText(
                f"&#9888; {flagged} of {checked} analysed slice(s) ({frac:.0%}) are {UNLIKE}"
                + (f" ({total - checked} not analysed yet)" if checked < total else "")
                + (". The series result is not reliable." if frac >= 0.5 else "."))
        self.series_warning.setVisible(show)


class VerdictBar(QWidget):
    """The reader's verdict on the series result: accept / reject / modified + comment.

    sig_verdict(verdict, comment) is emitted on a click; the bar is enabled only
    while a recorded analysis is shown (`set_analysis`).
    """

    sig_verdict = Signal(str, str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("ai_verdict")
        self.comment = QLineEdit()
        self.comment.setObjectName("ai_verdict_comment")
        self.comment.setPlaceholderText("Comment (optional; required for 'Modified')")
        self.comment.setMaxLength(1000)
        self.buttons: dict[str, QPushButton] = {}
        row = QHBoxLayout()
        row.addWidget(QLabel("Reader:"))
        tips = {"accepted": "The AI result is correct as shown",
                "rejected": "The AI result is wrong",
                "modified": "The result needs correcting: say how in the comment"}
        for key, text in (("accepted", "Accept"), ("rejected", "Reject"), ("modified", "Modified...")):
            b = QPushButton(text)
            b.setObjectName(f"ai_verdict_{key}")
            b.setToolTip(tips[key] + " (recorded in the audit log)")
            b.clicked.connect(lambda _c=False, k=key: self._clicked(k))
            self.buttons[key] = b
            row.addWidget(b)
        self.status = QLabel("")
        self.status.setObjectName("ai_verdict_status")
        self.status.setWordWrap(True)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 2, 0, 2)
        lay.addLayout(row)
        lay.addWidget(self.comment)
        lay.addWidget(self.status)
        self.analysis_id: str | None = None
        self.set_analysis(None)

    def set_analysis(self, analysis_id: str | None, status: str = "") -> None:
        self.analysis_id = analysis_id
        for b in self.buttons.values():
            b.setEnabled(analysis_id is not None)
        self.comment.setEnabled(analysis_id is not None)
        self.status.setText(status)
        self.setVisible(analysis_id is not None or bool(status))

    def _clicked(self, verdict: str) -> None:
        if self.analysis_id is None:
            return
        comment = self.comment.text().strip()
        if verdict == "modified" and not comment:
            self.status.setText("Say in the comment what should be different, then press 'Modified...' again.")
            self.comment.setFocus()
            return
        self.sig_verdict.emit(verdict, comment)

    def show_recorded(self, verdict: str, user: str, time_text: str, comment: str) -> None:
        self.comment.clear()
        note = f": \u201c{comment}\u201d" if comment else ""
        self.status.setText(f"<b>{VERDICT_LABELS.get(verdict, verdict)}</b> by {html.escape(user)} at "
                            f"{html.escape(time_text)}{html.escape(note)} (audit log)")
