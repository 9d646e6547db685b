"""Lots and corrections: a lot's summary and report (one summary for every screen:
:func:`mangograde.records.summary.lot_summary`), closing a lot, corrections of recorded
gradings (appended to the records; a grade of the run, or "reject": not a mango), the lot's
queue of gradings to check by hand, any of its gradings found by name, and the kept photos
they show."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Body, FastAPI, HTTPException, Path, Query, Request
from fastapi.responses import Response

from ...basics.errors import SettingsError
from ...records import (
    PAGE_LIMIT,
    LotClosed,
    LotSummary,
    NoSuchRecord,
    RecordsError,
    close_lot,
    correct,
    find_gradings,
    to_check,
)
from ...records.corrections import check_search, standing
from ..deps import KEY_NAME
from ..schemas import (
    CorrectionIn,
    CorrectionOut,
    CorrectionsOf,
    GradingItem,
    LotCloseIn,
    LotEventOut,
    LotGradings,
    LotTally,
    ToCheck,
    ToCheckItem,
)
from ..state import ServiceState
from ..telemetry import log_detail

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_PHOTO = {200: {"content": {"image/*": {}}, "description": "The kept photo"}}


_HTML_PAGE = {200: {"content": {"text/html": {}}, "description": "The report"}}
# The highest id the records hold (their ids are SQL INTEGER: 32 bits in PostgreSQL; an id
# above 2**63 - 1 made SQLite's driver fail): above it, 422 before the database is asked.
MAX_ID = 2**31 - 1


def not_found(what: str, exc: Exception) -> HTTPException:
    """404 saying only that ``what`` is not there: the database's address and the other
    lots' names that the records' message holds go to the log, never to the client."""
    log_detail("not found", str(exc))
    return HTTPException(404, f"No {what}.")


def lot_gone(lot: str, exc: Exception) -> HTTPException:
    return not_found(f"lot named {lot[:200]!r}", exc)


def operator_of(named: str | None, key_name: str | None, what: str = "a correction") -> str | None:
    """Who corrects (or closes a lot: ``what``): with named keys (``NAME KEY`` lines), the
    key's name, and a request naming someone else is refused (403); with one bare key
    (``api-key``) or none, the ``operator`` sent, else the key's name."""
    if key_name is None or key_name == KEY_NAME:
        return named or key_name
    if named is not None and named.strip() and named.strip() != key_name:
        raise HTTPException(
            403, f"This API key is {key_name}'s: {what} sent with it is recorded as "
            f"{key_name}'s, so it cannot name {named.strip()[:200]!r} as its operator. Send it "
            "with that operator's own key, or leave operator out.",
        )  # fmt: skip
    return key_name


def tally_of(summary: LotSummary) -> LotTally:
    """What ``GET /v1/lots/{lot}`` and the page's lot line say of the lot's summary."""
    return LotTally(lot=summary.name, gradings=summary.gradings, mix=summary.mix,
                    rejects=summary.rejects, checks=summary.checks,
                    checks_left=summary.checks_left, corrections=summary.corrections,
                    fruits=summary.n_fruits, fruit_mix=summary.fruit_mix,
                    fruit_rejects=summary.fruit_rejects, unfamiliar=summary.unfamiliar,
                    grades=list(summary.grades), closed_by=summary.closed_by,
                    closed_at=None if summary.closed_at is None
                    else summary.closed_at.isoformat())  # fmt: skip


def add_lot_routes(app: FastAPI, service: ServiceState, guarded: list[Any]) -> None:
    """``GET /v1/lots/{lot}`` and its report, ``POST /v1/lots/{lot}/close``,
    ``POST`` and ``GET /v1/gradings/{id}/corrections``, ``GET /v1/lots/{lot}/to-check``,
    ``GET /v1/lots/{lot}/gradings`` and ``GET /v1/photos/{sha256}``, behind the API key
    like every ``/v1`` route."""

    async def _summary(lot: str) -> LotSummary:
        if service.recorder is None:
            raise HTTPException(404, "This service keeps no records (it was started with "
                                "--no-record): there are no lots to show.")  # fmt: skip
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(None, service.recorder.store.summary, lot, True)
        except SettingsError as exc:  # the records know no such lot
            raise lot_gone(lot, exc) from None
        except RecordsError as exc:
            raise HTTPException(503, str(exc)) from None

    @app.get("/v1/lots/{lot}", response_model=LotTally, dependencies=guarded, tags=["lots"])
    async def lot_tally(lot: str) -> LotTally:
        """A lot's tally from the records (it survives a restart of the service): photos
        and fruits by grade, best first; photos left to check, exactly the to-check list."""
        return tally_of(await _summary(lot))

    @app.get("/v1/lots/{lot}/report", dependencies=guarded, tags=["lots"],
             response_class=Response, responses=_HTML_PAGE)  # fmt: skip
    async def lot_report(lot: str) -> Response:
        """The lot's report page (as ``mangograde lots report LOT --out lot.html``)."""
        from ...workflows.lots import lot_html

        return Response(lot_html(await _summary(lot)), media_type="text/html")

    def store() -> Any:
        if service.recorder is None:
            raise HTTPException(404, "This service keeps no records (it was started with "
                                "--no-record): there is nothing to correct.")  # fmt: skip
        return service.recorder.store

    async def in_writer(missing: str, work: Callable[..., Any], *args: Any) -> Any:
        """Run on the records' one writer thread (SQLite has one writer at a time);
        ``missing``: what a 404 says is not there."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(service.recorder.writer, work, *args)
        except NoSuchRecord as exc:
            raise not_found(missing, exc) from None
        except SettingsError as exc:
            raise HTTPException(422, str(exc)) from None
        except LotClosed as exc:  # who closed it and when
            raise HTTPException(409, str(exc)) from None
        except RecordsError as exc:
            raise HTTPException(503, str(exc)) from None

    @app.post("/v1/lots/{lot}/close", response_model=LotEventOut,
              response_model_exclude_none=True, status_code=201, dependencies=guarded,
              tags=["lots"])  # fmt: skip
    async def close(
        request: Request, lot: str, body: Annotated[LotCloseIn | None, Body()] = None
    ) -> LotEventOut:
        """Close the lot in the operator's name (the key's, with named keys): from now on
        it refuses gradings and corrections with 409, naming who closed it and when. A lot
        already closed answers 409; ``mangograde lots reopen`` reopens one."""
        named = None if body is None else body.operator
        operator = operator_of(named, getattr(request.state, "key_name", None), "a close")
        if not operator:
            raise HTTPException(422, "Say who closes the lot: send {\"operator\": NAME} (the "
                                "page sends the operator name it keeps).")  # fmt: skip
        event = await in_writer(f"lot named {lot[:200]!r}", close_lot, store(), lot, operator)
        return LotEventOut(lot=lot.strip(), kind=event.kind, operator=event.operator,
                           time=event.time.isoformat(), why=event.why)  # fmt: skip

    @app.post("/v1/gradings/{grading_id}/corrections", response_model=CorrectionOut,
              response_model_exclude_none=True, status_code=201, dependencies=guarded,
              tags=["corrections"])  # fmt: skip
    async def add_correction(
        request: Request,
        grading_id: Annotated[
            int, Path(ge=1, le=MAX_ID, description="The grading's id (grading_id)")
        ],
        body: CorrectionIn,
    ) -> CorrectionOut:
        """Record the operator's grade for a graded photo, or ``"reject"``: it is not a mango
        (counted apart from the grades). Appended, never overwriting; the latest correction
        stands, and an undo is a new correction."""
        operator = operator_of(body.operator, getattr(request.state, "key_name", None))
        if not operator:
            raise HTTPException(422, "Say who corrects: send an operator name (the page asks "
                                "for it once).")  # fmt: skip
        found = await in_writer(f"grading {grading_id}", correct, store(), grading_id,
                                body.grade, operator, body.note)  # fmt: skip
        service.telemetry.corrections.inc()
        return CorrectionOut(id=found.id, grading_id=found.grading_id, grade=found.grade,
                             previous=found.previous, operator=found.operator,
                             time=found.time.isoformat(), note=found.note)  # fmt: skip

    @app.get("/v1/gradings/{grading_id}/corrections", response_model=CorrectionsOf,
             response_model_exclude_none=True, dependencies=guarded,
             tags=["corrections"])  # fmt: skip
    async def corrections_of(
        grading_id: Annotated[
            int, Path(ge=1, le=MAX_ID, description="The grading's id (grading_id)")
        ],
    ) -> CorrectionsOf:
        """A grading's corrections, oldest first, and what stands now (a grade, or
        ``"reject"``)."""
        loop = asyncio.get_running_loop()
        try:
            found = await loop.run_in_executor(None, standing, store(), [grading_id])
        except RecordsError as exc:
            raise HTTPException(503, str(exc)) from None
        if grading_id not in found:
            raise HTTPException(404, f"No grading {grading_id}.")
        row = found[grading_id]
        made = [CorrectionOut(id=c.id, grading_id=c.grading_id, grade=c.grade,
                              previous=c.previous, operator=c.operator,
                              time=c.time.isoformat(), note=c.note)
                for c in row["corrections"]]  # fmt: skip
        return CorrectionsOf(grading_id=grading_id, grade=row["graded"],
                             standing=made[-1].grade if made else row["graded"],
                             corrections=made)  # fmt: skip

    def photo_url(sha256: str) -> str | None:
        kept = service.keeper is not None and service.keeper.find(sha256) is not None
        return f"/v1/photos/{sha256}" if kept else None

    @app.get("/v1/lots/{lot}/gradings", response_model=LotGradings,
             response_model_exclude_none=True, dependencies=guarded,
             tags=["corrections"])  # fmt: skip
    async def lot_gradings(
        lot: str,
        search: Annotated[
            str | None,
            Query(
                description="Only photos (or fruits) whose name holds this, in any case; "
                "at most 200 characters"
            ),
        ] = None,
        limit: Annotated[
            int, Query(ge=1, le=PAGE_LIMIT, description="Gradings a page (1 to 200)")
        ] = 50,
        offset: Annotated[
            int, Query(ge=0, le=MAX_ID, description="Gradings to skip (newest first)")
        ] = 0,
    ) -> LotGradings:
        """Any of the lot's gradings, marked check or not, newest first, by a part of the
        photo's (or fruit's) name: each with the grade that stands and whether an operator
        corrected it, to find a photo and correct it. Paged: ``total`` counts them all."""
        try:
            search = check_search(search)
        except SettingsError as exc:
            raise HTTPException(422, str(exc)) from None
        loop = asyncio.get_running_loop()
        try:
            found = await loop.run_in_executor(None, find_gradings, store(), lot, search,
                                               limit, offset)  # fmt: skip
        except NoSuchRecord as exc:
            raise lot_gone(lot, exc) from None
        except SettingsError as exc:
            raise HTTPException(422, str(exc)) from None
        except RecordsError as exc:
            raise HTTPException(503, str(exc)) from None
        items = [GradingItem(**(row | {"time": row["time"].isoformat()}),
                             photo_url=photo_url(row["sha256"]))
                 for row in found.items]  # fmt: skip
        return LotGradings(lot=lot, search=search, total=found.total, limit=limit,
                           offset=offset, items=items)  # fmt: skip

    @app.get("/v1/lots/{lot}/to-check", response_model=ToCheck,
             response_model_exclude_none=True, dependencies=guarded,
             tags=["corrections"])  # fmt: skip
    async def lot_to_check(
        lot: str,
        corrected: Annotated[
            bool, Query(description="Also those already corrected or confirmed")
        ] = False,
    ) -> ToCheck:
        """The lot's gradings marked check by hand: unfamiliar first, then least sure."""
        loop = asyncio.get_running_loop()
        try:
            rows = await loop.run_in_executor(None, to_check, store(), lot, corrected)
        except NoSuchRecord as exc:
            raise lot_gone(lot, exc) from None
        except RecordsError as exc:
            raise HTTPException(503, str(exc)) from None
        items = [ToCheckItem(**{k: v for k, v in row.items() if k != "time"},
                             photo_url=photo_url(row["sha256"]))
                 for row in rows]  # fmt: skip
        return ToCheck(lot=lot, items=items)

    @app.get("/v1/photos/{sha256}", dependencies=guarded, tags=["corrections"],
             response_class=Response, responses=_PHOTO)  # fmt: skip
    async def kept_photo(sha256: str) -> Response:
        """A graded photo as kept by ``--keep-photos``, by the SHA-256 of its bytes (a
        regular file in that folder: never a link to somewhere else)."""
        if service.keeper is None:
            raise HTTPException(404, "This service keeps no photos (start it with --keep-photos).")
        if not _SHA256.match(sha256):
            raise HTTPException(422, "A photo is named by the SHA-256 of its bytes: 64 "
                                "lower-case hexadecimal digits.")  # fmt: skip
        loop = asyncio.get_running_loop()
        found = await loop.run_in_executor(None, service.keeper.read, sha256)
        if found is None:
            raise HTTPException(404, f"No kept photo {sha256[:12]}…: it was never kept, or "
                                "the size limit has removed it.")  # fmt: skip
        return Response(found[0], media_type=found[1])
