"""Time: aware datetimes only, UTC in storage, windows of inclusive days in a named zone.

A "moment" of purchase or activation is either a `date` (the evidence names a day, in the
campaign's zone) or an aware `datetime` (an instant). Naive datetimes are refused at the
edge: we never guess a zone, and never compare naive with aware.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cached_property
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from promo.errors import FieldError, InputError
from promo.i18n import N_, Phrase

Moment = date | datetime  # datetime is a subclass of date: test datetime first

_DB_LENGTH = len("2013-10-01T12:00:00.000000Z")  # db_time's fixed width


def utcnow() -> datetime:
    return datetime.now(UTC)


_last_db_time: tuple[datetime | None, str] = (None, "")


def db_time(value: datetime) -> str:
    """Fixed-width UTC text, so text order is time order in any database."""
    global _last_db_time
    last = _last_db_time
    if last[0] is value:  # one write stores its `now` five or six times
        return last[1]
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("refusing to store a naive datetime")
    # isoformat is several times faster than strftime, and it is on every write's path.
    text = value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"
    _last_db_time = (value, text)  # one tuple, swapped whole: safe across threads
    return text


def db_now() -> str:
    return db_time(utcnow())


def from_db_time(text: str) -> datetime:
    if len(text) != _DB_LENGTH or text[-1] != "Z":  # only what db_time writes
        raise ValueError(f"not a stored time: {text!r}")
    # strptime is ~10x slower; Python 3.11's fromisoformat reads the "Z" as UTC itself (no
    # slice, no replace: two per session read, issue 18)
    return datetime.fromisoformat(text)


def iso(value: datetime) -> str:
    """Readable UTC for output: 2013-10-01T12:00:00Z."""
    utc = value.astimezone(UTC)
    text = utc.isoformat(timespec="microseconds" if utc.microsecond else "seconds")
    return text.replace("+00:00", "Z")


def zone(name: str, field: str = "timezone") -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError, OSError):  # OSError: a name too long for a file name
        raise InputError.one(field, f"unknown time zone {name[:60]!r} (use an IANA name such as Europe/Copenhagen)") from None


def parse_instant(value: str, field: str) -> datetime:
    """An instant with an explicit offset or Z, e.g. 2013-10-01T12:00:00Z."""
    text = (value or "").strip()
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise InputError.one(field, f"{value!r} is not a date and time (use e.g. 2013-10-01T12:00:00Z)") from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise InputError.one(field, f"{value!r} has no time zone: add Z or an offset such as +02:00")
    return parsed.astimezone(UTC)


def parse_moment(value: str, field: str) -> Moment:
    """A day (2013-08-01) or an instant with an offset (2013-08-01T10:00:00+02:00)."""
    text = (value or "").strip()
    if not text:
        raise InputError.one(field, "is required (a date such as 2013-08-01)")
    if len(text) == 10:
        try:
            return date.fromisoformat(text)
        except ValueError:
            raise InputError.one(field, f"{value!r} is not a valid date (use YYYY-MM-DD)") from None
    return parse_instant(text, field)


def moment_to_db(value: Moment) -> str:
    return db_time(value) if isinstance(value, datetime) else value.isoformat()


def moment_from_db(text: str) -> Moment:
    return date.fromisoformat(text) if len(text) == 10 else from_db_time(text)


def moment_text(value: Moment) -> str:
    return iso(value) if isinstance(value, datetime) else value.isoformat()


def moment_not_before(later: Moment, earlier: Moment, tz: ZoneInfo) -> bool:
    """Is `later` at or after `earlier`? A bare day covers the whole day in zone tz."""
    if isinstance(later, datetime) and isinstance(earlier, datetime):
        return later.astimezone(UTC) >= earlier.astimezone(UTC)
    return _day(later, tz) >= _day(earlier, tz)


# The widest offsets of any zone in use (Etc/GMT+12 to Pacific/Kiritimati): a bare day
# covers, in some zone, the instants from 10:00Z the day before to 12:00Z the day after.
_EARLIEST_OFFSET, _LATEST_OFFSET = timedelta(hours=-12), timedelta(hours=14)


def order_possible(later: Moment, earlier: Moment) -> bool:
    """Could `later` be at or after `earlier` in some campaign's zone? For evidence that
    belongs to no campaign yet (an activation record): only an order that no zone can make
    right is wrong there; each campaign orders a bare day in its own zone (moment_not_before)."""
    if isinstance(later, datetime) and isinstance(earlier, datetime):
        return later.astimezone(UTC) >= earlier.astimezone(UTC)
    if isinstance(later, datetime):  # the latest day the instant can be anywhere
        return (later.astimezone(UTC) + _LATEST_OFFSET).date() >= earlier
    if isinstance(earlier, datetime):  # the earliest day the instant can be anywhere
        return later >= (earlier.astimezone(UTC) + _EARLIEST_OFFSET).date()
    return later >= earlier


def _day(value: Moment, tz: ZoneInfo) -> date:
    return value.astimezone(tz).date() if isinstance(value, datetime) else value


@dataclass(frozen=True)
class DayWindow:
    """Inclusive days [first_day, last_day] in a named zone (R-X1)."""

    first_day: date
    last_day: date
    tz: ZoneInfo

    @cached_property  # frozen: computed once per window, not on every check
    def start(self) -> datetime:
        """The first instant inside the window, in UTC."""
        return datetime.combine(self.first_day, time(0), tzinfo=self.tz).astimezone(UTC)

    @cached_property
    def end(self) -> datetime:
        """The first instant after the window (exclusive), in UTC: midnight after last_day."""
        return datetime.combine(self.last_day + timedelta(days=1), time(0), tzinfo=self.tz).astimezone(UTC)

    def contains(self, moment: Moment) -> bool:
        if isinstance(moment, datetime):
            instant = moment.astimezone(UTC)  # compare in UTC: same-tzinfo compares wall clocks
            return self.start <= instant < self.end
        return self.first_day <= moment <= self.last_day

    def is_before(self, moment: Moment) -> bool:
        """True when moment falls before the window opens."""
        if isinstance(moment, datetime):
            return moment.astimezone(UTC) < self.start
        return moment < self.first_day


def query_day_range(query: dict[str, str], errors: list[FieldError], *, first: date, last: date, example: str,
                    in_order: bool = True) -> tuple[date | None, date | None]:
    """`since` and `until` from a list page's query: inclusive days within first..last (a day
    past them overflows where a zone turns the day into instants). A bad one is appended to
    `errors`, naming its field, and read as absent."""
    days: dict[str, date | None] = {}
    for name in ("since", "until"):
        value = (query.get(name) or "").strip()
        try:
            day = date.fromisoformat(value) if value else None
        except ValueError:
            errors.append(FieldError(name, Phrase(N_("must be a date such as %(example)s"), example=example)))
            day = None
        if day is not None and not first <= day <= last:
            errors.append(FieldError(name, Phrase(N_("must be a day between %(first)s and %(last)s"), first=first, last=last)))
            day = None
        days[name] = day
    since, until = days["since"], days["until"]
    if in_order and since and until and since > until:
        errors.append(FieldError("until", N_("must not be before the first day")))
    return since, until
