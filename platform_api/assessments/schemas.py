from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, FiniteFloat

Exudate = Literal["none", "low", "moderate", "heavy"]


class ScanMetadata(BaseModel):
    """What may come with a scan. Unknown keys are refused: the metadata is stored and sent to the assessment
    service, so an identifier (a name, a record number) must not ride along in it."""

    model_config = ConfigDict(extra="forbid")

    captured_at: AwareDatetime | None = None  # default: when the upload arrived
    device: str | None = Field(None, min_length=1, max_length=80)
    body_site: str | None = Field(None, min_length=1, max_length=60)  # default: the wound's
    exudate: Exudate | None = None


def _four_by_four(matrix: list[list[float]]) -> list[list[float]]:
    if len(matrix) != 4 or any(len(row) != 4 for row in matrix):
        raise ValueError("world_to_camera must be a 4x4 matrix")
    return matrix


class Camera(BaseModel):
    """The photo's pinhole camera (docs/scan-format.md): pixel = (fx X/Z + cx, fy Y/Z + cy)."""

    width: int = Field(gt=0, le=20_000)
    height: int = Field(gt=0, le=20_000)
    fx: FiniteFloat = Field(gt=0)
    fy: FiniteFloat = Field(gt=0)
    cx: FiniteFloat
    cy: FiniteFloat
    world_to_camera: Annotated[list[list[FiniteFloat]], AfterValidator(_four_by_four)]


class ScanRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    wound_id: str
    patient_id: str
    uploaded_by: str
    captured_at: datetime
    scan_format: str
    scan_bytes: int
    scan_sha256: str
    has_photo: bool
    camera: dict | None
    scan_metadata: dict | None
    status: str
    error: str | None
    created_at: datetime
    assessment_id: str | None = None


class AssessmentRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    scan_id: str
    wound_id: str
    patient_id: str
    captured_at: datetime
    created_at: datetime
    area_cm2: float | None
    volume_cm3: float | None
    max_depth_mm: float | None
    mean_depth_mm: float | None
    perimeter_cm: float | None
    length_cm: float | None
    width_cm: float | None
    surface_area_cm2: float | None
    tissue: dict[str, float] | None
    exudate: str | None
    p_heal_12w: float | None
    weeks_to_closure: float | None
    flags: list[dict]
    model_versions: dict[str, str]
    data_version: str | None
    result: dict  # the assessment service's whole reply: intervals, confidences, outline, quality, prognosis


class TrendPoint(BaseModel):
    assessment_id: str
    captured_at: datetime
    area_cm2: float | None
    volume_cm3: float | None
    max_depth_mm: float | None
    area_reduction_pct: float | None  # from the baseline; negative when the wound grew


class TrendSummary(BaseModel):
    baseline: TrendPoint | None  # the first assessment with a measured area
    latest: TrendPoint | None  # the newest one with a measured area
    area_reduction_pct: float | None
    weeks_since_baseline: float | None
    # Sheehan et al. 2003 (Diabetes Care 26:1879): a diabetic foot ulcer that shrinks by less than half in
    # 4 weeks is unlikely to heal in 12; None until an assessment lies near week 4 after the baseline
    area_reduction_4w_pct: float | None
    on_track_4w: bool | None


class TrendRead(BaseModel):
    wound_id: str
    points: list[TrendPoint]
    summary: TrendSummary
