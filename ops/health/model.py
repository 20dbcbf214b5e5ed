"""The health model: one `Check` per row, the score, and the two renderings (table, JSON).

Nothing here talks to a server; `ops.health.checks`, `ops.health.swarm` and
`ops.health.kubernetes` produce the rows.
The scoring rule and the JSON shape are documented in `ops/health/__init__.py`.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Any, Literal

Status = Literal["ok", "warn", "fail"]
STATUSES: tuple[Status, ...] = ("ok", "warn", "fail")
# Points of a row, out of 1.
POINTS: dict[Status, Fraction] = {"ok": Fraction(1), "warn": Fraction(1, 2), "fail": Fraction(0)}
# Components in display order; a row of another component sorts after these.
COMPONENTS = ("spire", "keycloak", "ziti", "certificates", "swarm", "kubernetes")
SCHEMA_VERSION = 1
REDACTED = "[secret]"


@dataclass(frozen=True)
class Check:
    """One row: what was checked on which component, how it went, and why."""

    component: str
    check: str
    status: Status
    detail: str
    target: str | None = None  # the URL, socket or engine that was asked (never with credentials)

    def as_json(self) -> dict[str, Any]:
        return {"component": self.component, "check": self.check, "status": self.status,
                "detail": self.detail, "target": self.target}


def worst(statuses: Iterable[Status]) -> Status:
    """fail beats warn beats ok; nothing at all is ok."""
    seen = set(statuses)
    return "fail" if "fail" in seen else "warn" if "warn" in seen else "ok"


@dataclass(frozen=True)
class StatusReport:
    """Every row of one `ops status` run, with the score and overall status derived from them."""

    stack: str
    platform: str
    checks: tuple[Check, ...]
    checked_at: datetime.datetime = field(default_factory=lambda: datetime.datetime.now(datetime.UTC))

    @property
    def status(self) -> Status:
        return worst(c.status for c in self.checks)

    def by_component(self) -> dict[str, list[Check]]:
        groups: dict[str, list[Check]] = {}
        for c in sorted(self.checks, key=_order):
            groups.setdefault(c.component, []).append(c)
        return groups

    def component_scores(self) -> dict[str, int]:
        return {name: _percent(_mean(POINTS[c.status] for c in rows)) for name, rows in self.by_component().items()}

    @property
    def score(self) -> int:
        """Mean over components of the mean of their rows' points, as a whole percentage rounded
        down: 100 only when every row is ok."""
        groups = self.by_component()
        if not groups:
            return 0
        return _percent(_mean(_mean(POINTS[c.status] for c in rows) for rows in groups.values()))

    def counts(self) -> dict[Status, int]:
        return {s: sum(1 for c in self.checks if c.status == s) for s in STATUSES}

    def unhealthy(self, *, strict: bool = False) -> bool:
        """Any row failed (with `strict`, any row not ok)."""
        return self.status == "fail" or (strict and self.status != "ok")

    def redacted(self, secrets: Sequence[str]) -> StatusReport:
        """The same rows with every occurrence of a secret value in a detail or target replaced."""
        values = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)
        if not values:
            return self

        def scrub(text: str | None) -> str | None:
            if text is None:
                return None
            for v in values:
                text = text.replace(v, REDACTED)
            return text

        rows = tuple(replace(c, detail=scrub(c.detail) or "", target=scrub(c.target)) for c in self.checks)
        return replace(self, checks=rows)

    def as_json(self, *, strict: bool = False) -> dict[str, Any]:
        """The `--json` document minus the envelope (`command`, `stack`, `ok`, `exitCode`)."""
        groups = self.by_component()
        scores = self.component_scores()
        return {
            "schemaVersion": SCHEMA_VERSION,
            "platform": self.platform,
            "checkedAt": self.checked_at.isoformat().replace("+00:00", "Z"),
            "status": self.status,
            "healthy": not self.unhealthy(strict=strict),
            "score": self.score,
            "counts": self.counts(),
            "components": {
                name: {"status": worst(c.status for c in rows), "score": scores[name]}
                for name, rows in groups.items()
            },
            "checks": [c.as_json() for rows in groups.values() for c in rows],
        }

    def render_table(self, *, strict: bool = False) -> str:
        """The terminal view: a header, one line per row (grouped by component), a summary."""
        rows = [c for group in self.by_component().values() for c in group]
        head = ("COMPONENT", "CHECK", "STATUS", "DETAIL")
        widths = [max([len(head[i])] + [len(_cells(c)[i]) for c in rows]) for i in range(3)]
        lines = [
            f"stack {self.stack} (platform {self.platform}) at {self.checked_at:%Y-%m-%d %H:%M:%S} UTC",
            "",
            "  ".join(h.ljust(w) for h, w in zip(head[:3], widths, strict=True)) + "  " + head[3],
        ]
        for c in rows:
            cells = _cells(c)
            lines.append("  ".join(x.ljust(w) for x, w in zip(cells[:3], widths, strict=True)) + "  " + cells[3])
        n = self.counts()
        verdict = "unhealthy" if self.unhealthy(strict=strict) else "healthy" if self.status == "ok" else "degraded"
        lines += ["", f"score {self.score}/100, {verdict}: {n['ok']} ok, {n['warn']} warn, {n['fail']} fail"]
        return "\n".join(lines)


def _cells(c: Check) -> tuple[str, str, str, str]:
    detail = c.detail if not c.target or c.target in c.detail else f"{c.detail} [{c.target}]"
    return c.component, c.check, c.status.upper() if c.status != "ok" else "ok", detail


def _order(c: Check) -> int:
    return COMPONENTS.index(c.component) if c.component in COMPONENTS else len(COMPONENTS)


def _mean(values: Iterable[Fraction]) -> Fraction:
    items = list(values)
    return sum(items, Fraction(0)) / len(items) if items else Fraction(0)


def _percent(x: Fraction) -> int:
    return int(x * 100)  # floor for 0 <= x <= 1
