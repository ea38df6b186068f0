"""EventBridge schedule expressions, rate(...) and cron(...), evaluated in sandbox time (UTC)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

_MONTHS = {
    m: i
    for i, m in enumerate(
        ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"], start=1
    )
}
_DAYS = {d: i for i, d in enumerate(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"], start=1)}
_UNITS = {"minute": 60, "minutes": 60, "hour": 3600, "hours": 3600, "day": 86400, "days": 86400}


class ScheduleError(ValueError):
    pass


def _field(text: str, low: int, high: int, names: dict[str, int] | None = None) -> frozenset[int] | None:
    """Allowed values of one cron field, or None for any (* or ?)."""
    if text in ("*", "?"):
        return None
    values: set[int] = set()
    for part in text.split(","):
        step = 1
        if "/" in part:
            part, step_text = part.split("/", 1)
            step = int(step_text)
        if part in ("*", ""):
            start, end = low, high
        elif "-" in part:
            a, b = part.split("-", 1)
            start, end = _value(a, names), _value(b, names)
        else:
            start = _value(part, names)
            end = high if step != 1 else start
        if not low <= start <= high or not low <= end <= high:
            raise ScheduleError(f"cron field value out of range: {text}")
        values.update(range(start, end + 1, step))
    return frozenset(values)


def _value(text: str, names: dict[str, int] | None) -> int:
    if names and text.upper() in names:
        return names[text.upper()]
    if not text.isdigit():
        raise ScheduleError(f"unsupported cron value: {text}")
    return int(text)


@dataclass(frozen=True)
class Schedule:
    rate_seconds: int | None = None
    minutes: frozenset[int] | None = None
    hours: frozenset[int] | None = None
    days: frozenset[int] | None = None
    months: frozenset[int] | None = None
    weekdays: frozenset[int] | None = None  # 1 = Sunday, as EventBridge counts
    years: frozenset[int] | None = None

    @classmethod
    def parse(cls, expression: str) -> Schedule:
        expression = expression.strip()
        rate = re.fullmatch(r"rate\(\s*(\d+)\s+(minutes?|hours?|days?)\s*\)", expression)
        if rate:
            amount = int(rate.group(1))
            if amount <= 0:
                raise ScheduleError("rate must be positive")
            return cls(rate_seconds=amount * _UNITS[rate.group(2)])
        cron = re.fullmatch(r"cron\((.*)\)", expression)
        if not cron:
            raise ScheduleError(f"unsupported schedule expression: {expression}")
        fields = cron.group(1).split()
        if len(fields) != 6:
            raise ScheduleError(f"cron needs 6 fields: {expression}")
        minute, hour, day, month, weekday, year = fields
        if "L" in day or "W" in day or "#" in weekday or "L" in weekday:
            raise ScheduleError(f"cron L/W/# are not supported by the sandbox: {expression}")
        return cls(
            minutes=_field(minute, 0, 59),
            hours=_field(hour, 0, 23),
            days=_field(day, 1, 31),
            months=_field(month, 1, 12, _MONTHS),
            weekdays=_field(weekday, 1, 7, _DAYS),
            years=_field(year, 1970, 2199),
        )

    def next_after(self, epoch: float) -> float:
        """The first firing time strictly after `epoch` (rates fire on whole multiples of the rate)."""
        if self.rate_seconds is not None:
            return (epoch // self.rate_seconds + 1) * self.rate_seconds
        moment = datetime.fromtimestamp(epoch, UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
        for _ in range(60 * 24 * 366 * 5):
            if self._matches(moment):
                return moment.timestamp()
            moment += timedelta(minutes=1)
        raise ScheduleError("cron expression never fires")

    def _matches(self, moment: datetime) -> bool:
        weekday = moment.isoweekday() % 7 + 1  # Monday=2 ... Sunday=1
        checks = (
            (self.minutes, moment.minute),
            (self.hours, moment.hour),
            (self.days, moment.day),
            (self.months, moment.month),
            (self.weekdays, weekday),
            (self.years, moment.year),
        )
        return all(allowed is None or value in allowed for allowed, value in checks)
