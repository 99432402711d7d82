"""The assessment report, as HTML (images inline) or PDF: the photo with the measured outline, the measurements with
their 95% intervals and confidences, tissue, flags, prognosis, the models and data that made it, and the trend."""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from datetime import UTC
from html import escape
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure
from sqlalchemy.orm import Session

from platform_api.assessments import charts
from platform_api.assessments.models import Assessment, Scan
from platform_api.assessments.schemas import TrendRead
from platform_api.assessments.service import visible_assessment, wound_assessments
from platform_api.assessments.storage import storage_for
from platform_api.assessments.trend import trend
from platform_api.audit.service import record_read
from platform_api.patients.models import Patient, Wound
from platform_api.settings import Settings

if TYPE_CHECKING:
    from platform_api.deps import Caller

MEASURES = (("area_cm2", "area", "cm²"), ("volume_cm3", "volume", "cm³"), ("max_depth_mm", "max depth", "mm"),
            ("mean_depth_mm", "mean depth", "mm"), ("perimeter_cm", "perimeter", "cm"), ("length_cm", "length", "cm"),
            ("width_cm", "width", "cm"), ("surface_area_cm2", "bed surface", "cm²"))
HEADER = ("measure", "value", "95% interval", "confidence")
STYLE = ("body{font-family:sans-serif;max-width:60em;margin:2em auto;color:#222}table{border-collapse:collapse}"
         "td,th{border:1px solid #ccc;padding:.2em .6em;text-align:right}th:first-child,td:first-child{text-align:left}"
         ".figures img{max-width:48%;margin-right:1%}")


@dataclass(frozen=True)
class ReportData:
    """Everything one report shows."""

    assessment: Assessment
    wound: Wound
    patient: Patient
    photo: np.ndarray | None  # (H, W, 3) uint8
    camera: dict | None
    trend: TrendRead


def report_data(session: Session, *, caller: Caller, settings: Settings, assessment_id: str) -> ReportData:
    """The assessment with its scan's photo, its wound, patient and trend (audited as a read)."""
    assessment = visible_assessment(session, caller=caller, assessment_id=assessment_id)
    scan = session.get(Scan, assessment.scan_id)
    wound, patient = session.get(Wound, assessment.wound_id), session.get(Patient, assessment.patient_id)
    photo = _pixels(storage_for(settings.storage_url).get(scan.photo_key)) if scan.photo_key else None
    history = trend(wound.id, wound_assessments(session, wound_id=wound.id))
    record_read(session, caller=caller, resource_type="assessment_report", resource_id=assessment.id,
                patient_id=assessment.patient_id)
    return ReportData(assessment, wound, patient, photo, scan.camera, history)


def _pixels(photo: bytes) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(photo)) as image:
        return np.asarray(image.convert("RGB"))


# ------------------------------------------------------------------------------------------------------ content


def measurement_rows(assessment: Assessment) -> list[tuple[str, str, str, str]]:
    """(measure, value, 95% interval, confidence) for each measurement."""
    intervals = assessment.result.get("uncertainty") or {}
    confidence = assessment.result.get("confidence") or {}
    rows = []
    for name, label, unit in MEASURES:
        value, interval = getattr(assessment, name), intervals.get(name)
        rows.append((label, _number(value, f" {unit}"), _bounds(interval, 1.0, 2, ""),
                     _percent(confidence.get(name))))
    return rows


def tissue_lines(assessment: Assessment) -> list[str]:
    """'granulation 62% (95%: 55–70%)' for each tissue class present."""
    intervals = (assessment.result.get("uncertainty") or {}).get("tissue") or {}
    lines = []
    for name, share in sorted((assessment.tissue or {}).items(), key=lambda kv: -(kv[1] or 0)):
        if share:
            bounds = _bounds(intervals.get(name), 100.0, 0, "%")
            lines.append(f"{name} {100 * share:.0f}%" + ("" if bounds == "—" else f" (95%: {bounds})"))
    return lines


def summary_lines(data: ReportData) -> dict[str, list[str]]:
    """The report's text sections beyond the table, titled."""
    a = data.assessment
    flags = [f"{f.get('code', '?')}: {f.get('message', '')}" for f in a.flags if isinstance(f, dict)]
    segmentation = a.result.get("segmentation") or {}
    provenance = [", ".join(f"{name} v{version}" for name, version in a.model_versions.items()) or "models unknown",
                  f"data version {a.data_version or 'unknown'}",
                  f"{segmentation.get('wound_points', '?')} of {segmentation.get('points', '?')} points wound; photo "
                  f"{'used' if segmentation.get('photo_used') else 'not used'}"]
    return {"Tissue": tissue_lines(a) or ["no tissue classification"], "Exudate": [a.exudate or "not recorded"],
            "Course to date": course_lines(data.trend), "Flags": flags or ["none"], "Prognosis": prognosis_lines(a),
            "Models and data": provenance}


def course_lines(history: TrendRead) -> list[str]:
    """The area reduction since the baseline and at week 4, with Sheehan's 50% rule."""
    s = history.summary
    if s.baseline is None:
        return ["no measured assessment yet"]
    if s.latest.assessment_id == s.baseline.assessment_id:
        return ["the baseline: the first assessment with a measured area"]
    lines = [f"area reduction since the baseline ({s.weeks_since_baseline:.1f} weeks): "
             f"{_number(s.area_reduction_pct, '%', 0)}"]
    if s.area_reduction_4w_pct is not None:
        verdict = "on track (>= 50%)" if s.on_track_4w else "below the 50% that predicts healing (Sheehan 2003)"
        lines.append(f"area reduction at 4 weeks: {s.area_reduction_4w_pct:.0f}%, {verdict}")
    return lines


def prognosis_lines(a: Assessment) -> list[str]:
    """The probability of closure in 12 weeks and the expected weeks, when the service gave a prognosis."""
    if a.p_heal_12w is None:
        return ["no prognosis: the wound has no history in the feature store, or no prognosis model is served"]
    lines = [f"probability of closure within 12 weeks: {100 * a.p_heal_12w:.0f}%"]
    if a.weeks_to_closure is not None:
        lines.append(f"expected weeks to closure: {a.weeks_to_closure:.1f}")
    return lines


def _number(value: float | None, unit: str, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}{unit}"


def _bounds(interval: object, scale: float, digits: int, unit: str) -> str:
    # the service's JSON: a [low, high] pair of numbers, or null where it could not say
    if not (isinstance(interval, list | tuple) and len(interval) == 2
            and all(isinstance(x, int | float) for x in interval)):
        return "—"
    return f"{scale * interval[0]:.{digits}f}–{scale * interval[1]:.{digits}f}{unit}"


def _percent(value: object) -> str:
    return f"{100 * value:.0f}%" if isinstance(value, int | float) else "—"


def _title(data: ReportData) -> list[str]:
    p, w, a = data.patient, data.wound, data.assessment
    return [f"{p.family_name}, {p.given_name} (born {p.birth_date.isoformat()}{', MRN ' + p.mrn if p.mrn else ''})",
            f"{str(w.etiology).replace('_', ' ')}, {w.body_site}; "
            f"captured {a.captured_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC; "
            f"assessment {a.id}"]


# ------------------------------------------------------------------------------------------------------ output


def html_report(data: ReportData) -> str:
    """The report as one HTML page with its two images inline."""
    a = data.assessment
    images = [charts.png(charts.draw_outline, data.photo, data.camera, a.result.get("outline")),
              charts.png(charts.draw_trend, data.trend.points, a.id)]
    figures = "".join(f'<img alt="{alt}" src="data:image/png;base64,{base64.b64encode(img).decode()}">'
                      for alt, img in zip(("wound outline", "trend"), images, strict=True))
    rows = "".join("<tr>" + "".join(f"<td>{escape(cell)}</td>" for cell in row) + "</tr>"
                   for row in measurement_rows(a))
    sections = "".join(f"<h2>{escape(title)}</h2><ul>{''.join(f'<li>{escape(x)}</li>' for x in lines)}</ul>"
                       for title, lines in summary_lines(data).items())
    head, sub = (escape(line) for line in _title(data))
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Wound assessment {escape(a.id)}'
            f"</title><style>{STYLE}</style></head><body><h1>Wound assessment</h1><p><b>{head}</b><br>{sub}</p>"
            f'<div class="figures">{figures}</div><h2>Measurements</h2><table><tr>'
            f"{''.join(f'<th>{h}</th>' for h in HEADER)}</tr>{rows}</table>{sections}</body></html>")


def pdf_report(data: ReportData) -> bytes:
    """The report as a one-page A4 PDF."""
    figure = Figure(figsize=(8.27, 11.69))
    FigureCanvasAgg(figure)
    grid = figure.add_gridspec(3, 2, height_ratios=(1.0, 0.55, 1.2), left=0.08, right=0.92, top=0.9, bottom=0.04,
                               hspace=0.25, wspace=0.35)
    figure.suptitle("Wound assessment", x=0.08, ha="left", fontsize=14)
    figure.text(0.08, 0.925, "\n".join(_title(data)), fontsize=8, va="bottom")
    charts.draw_outline(figure.add_subplot(grid[0, 0]), data.photo, data.camera, data.assessment.result.get("outline"))
    charts.draw_trend(figure.add_subplot(grid[0, 1]), data.trend.points, data.assessment.id)
    table_ax = figure.add_subplot(grid[1, :])
    table_ax.set_axis_off()
    table = table_ax.table(cellText=measurement_rows(data.assessment), colLabels=HEADER, loc="upper center")
    table.auto_set_font_size(False)
    table.set_fontsize(8)
    text_ax = figure.add_subplot(grid[2, :])
    text_ax.set_axis_off()
    text = "\n".join(f"{title}: " + "; ".join(lines) for title, lines in summary_lines(data).items())
    text_ax.text(0, 1, text, va="top", fontsize=8, wrap=True)
    out = io.BytesIO()
    with PdfPages(out) as pdf:
        pdf.savefig(figure)
    return out.getvalue()
