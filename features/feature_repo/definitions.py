"""Coherency's Feast definitions: entities, sources, feature views and one FeatureService per model contract.

The parquet tables are written by features/cohort/tables.py. Source paths below are relative to the project
root (where the Feast CLI runs); features/store.py rebinds them to the chosen data folder before `apply`.
A model contract never changes in place: a new feature list is a new service version (`..._v2`).
"""

from datetime import timedelta

from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType
from feast.types import Array, Bool, Float32, Int64, String

TABLES = "data/features/tables"

patient = Entity(name="patient", join_keys=["patient_id"], value_type=ValueType.STRING,
                 description="A person under wound care; risk factors hang off it.")
wound = Entity(name="wound", join_keys=["wound_id"], value_type=ValueType.STRING,
               description="One chronic wound of a patient, followed over visits.")

patient_risk_factors_source = FileSource(
    name="patient_risk_factors_source", path=f"{TABLES}/patient_risk_factors.parquet",
    timestamp_field="event_timestamp")
wound_profile_source = FileSource(
    name="wound_profile_source", path=f"{TABLES}/wound_profile.parquet", timestamp_field="event_timestamp",
    # the owning patient is a feature of the wound (to resolve it online); renamed so that it never
    # collides with the patient_id join key of an entity row
    field_mapping={"patient_id": "patient_ref"})
wound_history_source = FileSource(
    name="wound_history_source", path=f"{TABLES}/wound_history.parquet", timestamp_field="event_timestamp")

# ttl 0: a row stays valid until a newer row replaces it (risk factors are recorded once, at enrolment)
patient_risk_factors = FeatureView(
    name="patient_risk_factors", entities=[patient], ttl=timedelta(0), source=patient_risk_factors_source,
    schema=[Field(name="age", dtype=Float32), Field(name="sex", dtype=String),
            Field(name="diabetes", dtype=Bool), Field(name="hba1c", dtype=Float32, description="NaN: no diabetes"),
            Field(name="abi", dtype=Float32, description="ankle-brachial index"),
            Field(name="smoker", dtype=Bool), Field(name="bmi", dtype=Float32),
            Field(name="visit_interval_weeks", dtype=Int64)])

wound_profile = FeatureView(
    name="wound_profile", entities=[wound], ttl=timedelta(0), source=wound_profile_source,
    schema=[Field(name="patient_ref", dtype=String), Field(name="etiology", dtype=String),
            Field(name="body_site", dtype=String), Field(name="infection", dtype=Bool),
            Field(name="duration_weeks", dtype=Float32, description="wound age at the first visit")])

# one row per visit; the *_history lists hold every visit up to this one, oldest first
wound_history = FeatureView(
    name="wound_history", entities=[wound], ttl=timedelta(0), source=wound_history_source,
    schema=[Field(name="visit_index", dtype=Int64), Field(name="week", dtype=Int64),
            Field(name="weeks_since_onset", dtype=Float32), Field(name="area_cm2", dtype=Float32),
            Field(name="volume_cm3", dtype=Float32), Field(name="depth_mm", dtype=Float32),
            Field(name="pct_area_reduction", dtype=Float32, description="100 (1 - area / first area)"),
            Field(name="closed", dtype=Bool), Field(name="week_history", dtype=Array(Float32)),
            Field(name="area_history", dtype=Array(Float32)), Field(name="depth_history", dtype=Array(Float32)),
            Field(name="volume_history", dtype=Array(Float32))])

_patient_and_wound = [patient_risk_factors,
                      wound_profile[["etiology", "body_site", "infection", "duration_weeks"]]]

# XGBoost on what is known at the first visit (prediction time: end of the first visit's day)
prognosis_gbm_v1 = FeatureService(
    name="prognosis_gbm_v1", description="first-visit features for the gradient-boosted prognosis model",
    features=[*_patient_and_wound, wound_history[["area_cm2", "volume_cm3", "depth_mm", "weeks_since_onset"]]])

# the Transformer over the visit sequence up to the prediction time
prognosis_sequence_v1 = FeatureService(
    name="prognosis_sequence_v1", description="visit history for the sequence (Transformer) prognosis model",
    features=[*_patient_and_wound,
              wound_history[["week", "weeks_since_onset", "pct_area_reduction", "closed", "week_history",
                             "area_history", "depth_history", "volume_history"]]])
