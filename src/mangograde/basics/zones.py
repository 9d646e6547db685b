"""The house's time zone: the records keep UTC, screens and reports show the house's zone
and name it. A zone is a zoneinfo name (``Europe/Madrid``), or the machine's own zone
when none is given; a date typed by a user may end in an offset or in a zone name."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from pathlib import Path

from .errors import SettingsError


class _MachineZone(tzinfo):
    """This machine's zone as the C library knows it (``TZ``, ``/etc/localtime``), with its
    daylight saving rules, for a machine whose zone has no zoneinfo name."""

    def utcoffset(self, dt: datetime | None) -> timedelta:
        if dt is None:
            return timedelta(seconds=-time.timezone)
        stamp = dt.replace(tzinfo=timezone.utc).timestamp()
        local = time.localtime(stamp)
        # a wall time: the offset of the instant it names (first guess, then corrected)
        return timedelta(seconds=time.localtime(stamp - local.tm_gmtoff).tm_gmtoff)

    def dst(self, dt: datetime | None) -> timedelta:
        return timedelta(0)

    def tzname(self, dt: datetime | None) -> str:
        return time.tzname[0]

    def fromutc(self, dt: datetime) -> datetime:
        stamp = dt.replace(tzinfo=timezone.utc).timestamp()
        return dt + timedelta(seconds=time.localtime(stamp).tm_gmtoff)


def offset_text(offset: timedelta | None) -> str:
    """``UTC+01:00``, ``UTC-03:30``, ``UTC+00:00``."""
    seconds = int((offset or timedelta(0)).total_seconds())
    sign, minutes = ("-" if seconds < 0 else "+"), abs(seconds) // 60
    return f"UTC{sign}{minutes // 60:02d}:{minutes % 60:02d}"


@dataclass(frozen=True)
class HouseZone:
    """A zone to show times in: its name and its rules."""

    name: str
    tz: tzinfo

    def at(self, when: datetime) -> datetime:
        """``when`` (a naive time is UTC, as SQLite gives the records back) in this zone."""
        aware = when if when.tzinfo is not None else when.replace(tzinfo=timezone.utc)
        return aware.astimezone(self.tz)

    def show(self, when: datetime | None, seconds: bool = False) -> str:
        """``2026-12-07 10:00`` in this zone (the empty string for None)."""
        if when is None:
            return ""
        return f"{self.at(when):%Y-%m-%d %H:%M{':%S' if seconds else ''}}"

    def label(self, times: Iterable[datetime | None] = ()) -> str:
        """``Europe/Madrid (UTC+01:00)``: the name and the offsets it has at ``times``
        (now when none is given), e.g. ``(UTC+01:00, UTC+02:00)`` across a change of
        daylight saving time."""
        known = [t for t in times if t is not None] or [datetime.now(timezone.utc)]
        offsets = sorted({self.at(t).utcoffset() or timedelta(0) for t in known})
        return f"{self.name} ({', '.join(offset_text(o) for o in offsets)})"


def _zoneinfo(name: str) -> tzinfo | None:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


def _machine_zone() -> HouseZone:
    """The machine's zone, by its zoneinfo name where it has one (``TZ``, or where
    ``/etc/localtime`` points), else by the C library's rules and abbreviation."""
    candidates = [os.environ.get("TZ", "").lstrip(":")]
    localtime = Path("/etc/localtime")
    if "TZ" not in os.environ and localtime.is_symlink():
        target = str(localtime.resolve())
        if "zoneinfo/" in target:
            candidates.append(target.split("zoneinfo/", 1)[1])
    for name in candidates:
        found = _zoneinfo(name) if name and not name.startswith("/") else None
        if found is not None:
            return HouseZone(name, found)
    return HouseZone(time.tzname[0] or "local", _MachineZone())


def house_zone(name: str | None, option: str = "--timezone") -> HouseZone:
    """Zone ``name`` (a zoneinfo name such as ``Europe/Madrid``, or ``UTC``); None: the
    machine's zone. A name that is no zone is refused, with the nearest names."""
    if name is None:
        return _machine_zone()
    found = _zoneinfo(name.strip()) if name.strip() else None
    if found is None:
        default = " (without --timezone: this machine's zone)" if option == "--timezone" else ""
        raise SettingsError(
            f"{option} {name!r} is not a time zone{_near(name)}: give a zoneinfo name such as "
            f"Europe/Madrid, America/Lima, Asia/Kolkata or UTC{default}."
        )
    return HouseZone(name.strip(), found)


def _near(name: str) -> str:
    import difflib
    from zoneinfo import available_timezones

    known = {z.lower(): z for z in available_timezones()}
    close = difflib.get_close_matches(name.lower(), list(known), n=3, cutoff=0.75)
    return f" (did you mean {' or '.join(known[c] for c in close)}?)" if close else ""


def parse_time(text: str, option: str) -> datetime:
    """A date or time a user typed, as a UTC instant: ``YYYY-MM-DD[THH:MM]`` is UTC, an
    offset given is honoured (``2026-12-08T00:00+14:00``), and so is a zone name after a
    space (``2026-12-08T00:00 Europe/Madrid``, daylight saving time included)."""
    shapes = (
        "give YYYY-MM-DD (UTC), an ISO time with its offset (2026-12-08T00:00+14:00), or one "
        "followed by a zone name (2026-12-08T00:00 Europe/Madrid)"
    )
    text = text.strip()
    zone = None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        head, _, tail = text.rpartition(" ")
        try:
            when = datetime.fromisoformat(head.strip())
        except ValueError:
            raise SettingsError(f"{option} {text!r} is not a date: {shapes}.") from None
        zone = house_zone(tail, f"{option} {text!r}: the zone").tz
    if zone is not None:
        if when.tzinfo is not None:
            raise SettingsError(
                f"{option} {text!r} gives both an offset and a zone: {shapes}, not both."
            )
        when = when.replace(tzinfo=zone)
    # the records keep UTC (and SQLite compares naive times as text)
    aware = when if when.tzinfo is not None else when.replace(tzinfo=timezone.utc)
    return aware.astimezone(timezone.utc)
