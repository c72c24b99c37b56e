"""Silences: mute alerts whose labels match every matcher, for a while, with an author and a reason.

A silence is active from `starts_at` until `ends_at`; ending it early (unsilence) moves `ends_at`
to that moment. A token confined to a department or agent can only silence inside it: the scope is
added to the silence as one more equality matcher, so it can never mute another department.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from alerts.matchers import Matcher, all_match


class SilenceError(ValueError):
    """A silence cannot be made as asked; the message says why."""


@dataclass(frozen=True)
class Silence:
    id: str
    matchers: tuple[Matcher, ...]
    starts_at: datetime
    ends_at: datetime
    created_by: str
    comment: str
    created_at: datetime
    ended_by: str | None = None

    def active(self, now: datetime) -> bool:
        return self.starts_at <= now < self.ends_at

    def state(self, now: datetime) -> str:
        if now >= self.ends_at:
            return "expired"
        return "pending" if now < self.starts_at else "active"

    def mutes(self, labels: dict[str, str], now: datetime) -> bool:
        return self.active(now) and all_match(self.matchers, labels)

    def to_dict(self, now: datetime) -> dict:
        return {
            "id": self.id,
            "matchers": [m.model_dump() for m in self.matchers],
            "matchers_text": [str(m) for m in self.matchers],
            "starts_at": self.starts_at.isoformat(),
            "ends_at": self.ends_at.isoformat(),
            "state": self.state(now),
            "created_by": self.created_by,
            "comment": self.comment,
            "created_at": self.created_at.isoformat(),
            "ended_by": self.ended_by,
        }


def new_silence(
    matchers: list[Matcher],
    *,
    author: str,
    comment: str,
    now: datetime,
    starts_at: datetime | None = None,
    ends_at: datetime | None = None,
    duration: timedelta | None = None,
    scope: dict[str, str] | None = None,
    max_days: int = 3650,
) -> Silence:
    """A silence checked for sense: matchers, a reason, an end after its start; scope matchers added."""
    if not comment.strip():
        raise SilenceError("a silence needs a comment: say why, so others know when it may end")
    if (ends_at is None) == (duration is None):
        raise SilenceError("give the silence either an end time or a duration, not both")
    start = max(_aware(starts_at), now) if starts_at else now  # a start in the past means now
    limit = now + timedelta(days=max_days)
    try:
        end = _aware(ends_at) if ends_at else start + duration  # type: ignore[operator]
    except OverflowError:
        end = datetime.max.replace(tzinfo=UTC)
    if start > limit or end > limit:
        raise SilenceError(f"a silence may last at most {max_days} days from now")
    if end <= start:
        raise SilenceError(f"the silence would end ({end.isoformat()}) before it starts ({start})")
    if end <= now:
        raise SilenceError(f"the silence would already have ended ({end.isoformat()})")
    scoped = [Matcher(name=name, value=value) for name, value in (scope or {}).items()]
    every = tuple(dict.fromkeys([*matchers, *scoped]))  # once each, in order
    if not any(not m.negative and not (m.regex and _matches_empty(m)) for m in every):
        raise SilenceError(
            "a silence needs at least one matcher that does not match everything, e.g. rule=... or "
            "department=..."
        )
    return Silence("sil_" + secrets.token_hex(6), every, start, end, author, comment.strip(), now)


def _matches_empty(matcher: Matcher) -> bool:
    return matcher.matches({})


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def muting(silences: list[Silence], labels: dict[str, str], now: datetime) -> tuple[str, ...]:
    """The ids of the silences that mute an alert with these labels now."""
    return tuple(s.id for s in silences if s.mutes(labels, now))
