"""Data quality with Great Expectations: one suite per table of data/, a readable report, a hard stop.

Tables: the scan manifest and the photo set (manifests.py), the cohort and Feast tables (tables.py).
Suites: suites.py and cohort_suites.py. Running and reports: validate.py, report.py. The pipeline's
validate step calls `validate_data(data_dir, out_dir, limits)`, which raises DataQualityError.
"""

from features.quality.manifests import photo_set, scan_manifest
from features.quality.suites import QualityLimits
from features.quality.tables import cohort_tables, feature_tables
from features.quality.validate import (
    PARTS,
    SUITES,
    DataQualityError,
    Failure,
    Result,
    load_tables,
    validate,
    validate_data,
)

__all__ = ["PARTS", "SUITES", "DataQualityError", "Failure", "QualityLimits", "Result", "cohort_tables",
           "feature_tables", "load_tables", "photo_set", "scan_manifest", "validate", "validate_data"]
