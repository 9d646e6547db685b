"""The API's request and answer shapes (the OpenAPI schema at /openapi.json)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ModelRef(BaseModel):
    run: str = Field(description="The run folder's name")
    fold_rule: str = Field(description="How the run's fold models grade together")


class PhotoResult(BaseModel):
    image_id: str = Field(description="The uploaded file's name")
    grade: str | None = Field(None, description="The grade; absent when the photo had an error")
    probabilities: dict[str, float] | None = Field(None, description="Every grade's probability")
    check: bool | None = Field(
        None,
        description="True: grade this fruit by hand (see reason); absent when the run has "
        "neither an abstain setting nor a familiarity model",
    )
    reason: str | None = Field(
        None,
        description="Why to check it: not-a-fruit (nothing like a mango of the run's "
        "training photos: never graded), unfamiliar (unlike them) or unsure (top "
        "probability below the run's abstain setting)",
    )
    familiarity: float | None = Field(
        None,
        description="Distance from the run's training photos (its familiarity score); "
        "absent when the run has no familiarity model",
    )
    unfamiliar: bool | None = Field(
        None, description="True: the score is above the run's threshold (unlike its photos)"
    )
    fruit: str | None = Field(None, description="The fruit sent for this photo")
    grading_id: int | None = Field(
        None, description="Its row in the records database (absent when not recorded)"
    )
    model: ModelRef | None = None
    error: str | None = Field(None, description="Why this photo could not be graded")
    status: int | None = Field(None, description="415: not a photo format; 422: damaged/too big")


class FruitResult(BaseModel):
    fruit: str = Field(description="The fruit id sent in the `fruit` field")
    photos: list[str] = Field(description="Its photos that were graded (image ids)")
    grade: str = Field(description="The fruit's grade, from all of its photos")
    probabilities: dict[str, float] = Field(description="Every grade's probability")
    check: bool | None = Field(
        None,
        description="True: grade this fruit by hand; absent when the run has neither an "
        "abstain setting nor a familiarity model",
    )
    reason: str | None = Field(
        None,
        description="Why to check it: not-a-fruit or unfamiliar (any of its photos is) or unsure",
    )


class DriftStatus(BaseModel):
    window: int = Field(description="How many of the last photos are tested")
    photos_in_window: int
    photos_seen: int = Field(description="Photos tested since the service started: the "
                             "status with the most is the latest")  # fmt: skip
    drift_p: float | None = Field(
        None, description="p-value that the window's photos are like the run's held-out ones"
    )
    drifting: bool = Field(description="True while the p-value is below 0.01")


class GradeResponse(BaseModel):
    model: ModelRef
    lot: str | None = Field(None, description="The lot the gradings were recorded in")
    results: list[PhotoResult] = Field(description="One per uploaded photo, in upload order")
    fruits: list[FruitResult] | None = Field(
        None,
        description="With the `fruit` field: one per fruit, graded from all its photos by "
        "the run's fruit rule, in order of first photo",
    )
    drift: DriftStatus | None = Field(
        None, description="The drift window after these photos (runs with familiarity)"
    )


class LotTally(BaseModel):
    lot: str
    gradings: int = Field(description="Photos graded in the lot, every session of serve")
    mix: dict[str, int] = Field(
        description="Photos by grade, after corrections, best first (rejects apart)"
    )
    rejects: int = Field(
        0, description="Photos the operator answered reject (not a mango): in no grade"
    )
    checks: dict[str, int] = Field(
        description="Photos left to check by hand (not yet corrected or confirmed), by reason"
    )
    checks_left: int = Field(0, description="Photos left to check: the to-check list's length")
    corrections: int
    fruits: int = Field(description="Fruits graded from several photos (rejected ones too)")
    fruit_mix: dict[str, int] = Field(
        default_factory=dict, description="Fruits by grade, best first (where fruits were sent)"
    )
    fruit_rejects: int = Field(0, description="Fruits all of whose photos are rejects")
    unfamiliar: int = Field(0, description="Photos graded unfamiliar, corrected or not")
    grades: list[str] = Field(default_factory=list, description="The runs' grades, best first")
    closed_by: str | None = Field(
        None, description="Who closed the lot; null while it is open (or reopened since)"
    )
    closed_at: str | None = Field(None, description="When it was closed (ISO 8601, UTC)")


class LotCloseIn(BaseModel):
    operator: str | None = Field(
        None,
        description="Who closes the lot (1 to 200 characters); default: the name of the API "
        "key sent, required when the service has no keys",
    )


class LotEventOut(BaseModel):
    lot: str
    kind: str = Field(description="closed (events are appended, never updated)")
    operator: str
    time: str = Field(description="When it was recorded (ISO 8601, UTC)")
    why: str | None = None


class ModelInfo(BaseModel):
    run: str
    fold_rule: str
    grades: list[str] = Field(description="Best first")
    family: str
    preset: str | None
    explains_with: str = Field(description="gradcam (CNN runs) or lime")
    metrics: dict[str, Any] = Field(description="The run's held-out metrics")
    data: dict[str, Any] = Field(description="What the run was trained and scored on")
    versions: dict[str, str]
    records: str | None = Field(
        None, description="Where every grading is recorded (no password); absent: nowhere"
    )
    familiarity: dict[str, Any] | None = Field(
        None, description="The familiarity threshold and the drift window's status"
    )


class CorrectionIn(BaseModel):
    grade: str = Field(
        description="The operator's answer: one of the run's grades, or \"reject\" for a photo "
        "that is not a mango (an empty cup, a leaf, a hand, another fruit)"
    )
    operator: str | None = Field(
        None,
        description="Who corrects (1 to 200 characters); default: the name of the API key "
        "sent, required when the service has no keys",
    )
    note: str | None = Field(None, description="Why, in a few words (at most 10,000 characters)")


class CorrectionOut(BaseModel):
    id: int = Field(description="The correction's row; corrections are appended, never updated")
    grading_id: int
    grade: str = Field(description="The grade that now stands")
    previous: str = Field(description="The grade that stood before it")
    operator: str
    time: str = Field(description="When it was recorded (ISO 8601, UTC)")
    note: str | None = None


class PhotoGraded(BaseModel):
    """A recorded grading's photo, as the to-check list and the lot search show it."""

    grading_id: int
    photo: str = Field(description="The uploaded file's name")
    sha256: str
    photo_url: str | None = Field(
        None, description="Where the kept photo is served (absent without --keep-photos)"
    )
    fruit: str | None = None
    grade: str = Field(description="The model's grade")


class ToCheckItem(PhotoGraded):
    reason: str = Field(description="not-a-fruit, unfamiliar or unsure")
    familiarity: float | None = None
    top_probability: float
    probabilities: dict[str, float]
    corrected_grade: str | None = Field(None, description="The latest correction's grade")
    corrected_by: str | None = None


class ToCheck(BaseModel):
    lot: str
    items: list[ToCheckItem] = Field(
        description="Unfamiliar first, then least sure (lowest top probability)"
    )


class CorrectionsOf(BaseModel):
    grading_id: int
    grade: str = Field(description="The model's grade")
    standing: str = Field(description='What stands now: the latest correction (or "reject")')
    corrections: list[CorrectionOut] = Field(description="Every correction, oldest first")


class GradingItem(PhotoGraded):
    time: str = Field(description="When it was graded (ISO 8601, UTC)")
    standing: str = Field(description='What stands now: the latest correction (or "reject")')
    corrected: bool = Field(description="True: an operator corrected or confirmed it")
    corrected_by: str | None = None
    check: bool = Field(description="True: it was marked check by hand")
    reason: str | None = Field(None, description="Why it was marked check")
    familiarity: float | None = None
    top_probability: float
    probabilities: dict[str, float]


class LotGradings(BaseModel):
    lot: str
    search: str | None = Field(None, description="The search used (photo or fruit name)")
    total: int = Field(description="Gradings that match, on every page")
    limit: int
    offset: int
    items: list[GradingItem] = Field(description="Newest first")
