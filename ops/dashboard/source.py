"""What the dashboard shows of one stack, and where it comes from.

`StackView` is one look at a stack: its deployment (detected from the stack's config), the
`ops.health` report (`StatusReport`: rows, score), or the error that kept the stack from being
read (not deployed, config, passphrase: the `OpsError` every `ops` command prints). `LiveSource`
makes views the way `ops status` does (`ops.health.load_target` then `ops.health.collect`: the
same probes, timeouts and scrubbing) and draws the diagram with `ops.diagram` from the stack's
state. `Monitor` keeps the last view of each stack for a while, so several open pages and the
JSON endpoint share one run of the probes instead of starting one each.
"""

from __future__ import annotations

import datetime
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import ops.health
import ops.health.inputs
from ops.errors import OpsError
from ops.health.checks import PROBES, Probe
from ops.health.inputs import Options, Target
from ops.health.model import StatusReport, worst
from ops.workspace import PROJECT_ROOT
from stack_config import StackConfig

VIEW_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Deployment:
    """The deployment type, from the stack's config: platform swarm (dev or prod) or external."""

    platform: str  # "swarm" | "external"
    environment: str  # "dev" | "prod"
    nodes: int | None = None  # swarm: how many nodes the stack runs on

    @property
    def label(self) -> str:
        """"swarm dev", "swarm prod" or "external" (the servers are the user's, whatever the environment)."""
        return f"swarm {self.environment}" if self.platform == "swarm" else self.platform

    @classmethod
    def of(cls, config: StackConfig) -> Deployment:
        nodes = len(config.nodes) if config.platform == "swarm" else None
        return cls(config.platform, config.environment, nodes)

    def as_json(self) -> dict[str, Any]:
        return {"platform": self.platform, "environment": self.environment, "label": self.label, "nodes": self.nodes}


@dataclass(frozen=True)
class Problem:
    """Why a stack could not be read: the message, fix and exit code `ops status` would print."""

    message: str
    hint: str | None = None
    exit_code: int | None = None

    def as_json(self) -> dict[str, Any]:
        return {"message": self.message, "hint": self.hint, "exitCode": self.exit_code}


@dataclass(frozen=True)
class StackView:
    """One look at a stack: a report (and the deployment it was taken of), or a problem."""

    stack: str
    deployment: Deployment | None = None
    report: StatusReport | None = None
    problem: Problem | None = None
    taken_at: datetime.datetime = field(default_factory=lambda: datetime.datetime.now(datetime.UTC))

    @property
    def status(self) -> str:
        """ok | warn | fail as in `ops status`; "error" when the stack could not be read."""
        return self.report.status if self.report is not None else "error"

    @property
    def score(self) -> int | None:
        return self.report.score if self.report is not None else None

    def component_statuses(self) -> dict[str, str]:
        if self.report is None:
            return {}
        return {name: worst(c.status for c in rows) for name, rows in self.report.by_component().items()}

    def summary_json(self) -> dict[str, Any]:
        """One stack of `/api/stacks`."""
        report = self.report
        return {
            "stack": self.stack,
            "deployment": self.deployment.as_json() if self.deployment else None,
            "status": self.status,
            "score": self.score,
            "counts": report.counts() if report else None,
            "checkedAt": _iso(report.checked_at if report else self.taken_at),
            "error": self.problem.as_json() if self.problem else None,
        }

    def as_json(self) -> dict[str, Any]:
        """`/api/stacks/<stack>`: the `ops status --json` document's keys (`StatusReport.as_json`),
        plus `stack`, `deployment` and `error`; a stack that could not be read has `status: error`."""
        doc: dict[str, Any] = {
            "schemaVersion": VIEW_SCHEMA_VERSION,
            "stack": self.stack,
            "deployment": self.deployment.as_json() if self.deployment else None,
            "error": self.problem.as_json() if self.problem else None,
        }
        if self.report is not None:
            doc.update(self.report.as_json())
        else:
            doc.update({"platform": None, "checkedAt": _iso(self.taken_at), "status": "error", "healthy": False,
                        "score": None, "counts": None, "components": {}, "checks": []})
        return doc


def _iso(when: datetime.datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


class Source(Protocol):
    """Where the dashboard gets a stack's view and its diagram (SVG text; OpsError when it cannot)."""

    def view(self, stack: str) -> StackView: ...

    def diagram_svg(self, stack: str) -> str: ...


Loader = Callable[..., Target]


class LiveSource:
    """Views of deployed stacks, made exactly as `ops status` makes its report.

    `options` maps a stack to its `ops.health.Options` (the CLI gives every stack the same timeout
    and warning window, and each its own Keycloak health URL). `load` and `probes` default to the
    health model's own (`ops.health.inputs.load_target`, `ops.health.checks.PROBES`)."""

    def __init__(
        self,
        options: Mapping[str, Options] | None = None,
        *,
        root: Path = PROJECT_ROOT,
        environ: Mapping[str, str] | None = None,
        load: Loader | None = None,
        probes: Sequence[tuple[str, str, Probe]] = PROBES,
    ) -> None:
        self._options = dict(options or {})
        self._root = root
        self._environ = environ
        self._load = load
        self._probes = probes

    def view(self, stack: str) -> StackView:
        load = self._load or ops.health.inputs.load_target  # looked up at each call (tests replace it)
        try:
            target = load(stack, root=self._root, environ=self._environ)
        except OpsError as e:
            return StackView(stack, problem=Problem(e.message, e.hint, int(e.code)))
        report = ops.health.collect(target, self._options.get(stack), self._probes)
        return StackView(stack, Deployment.of(target.config), report)

    def diagram_svg(self, stack: str) -> str:
        from ops import diagram  # the Automation API and Graphviz: only when a page asks for a picture

        resources = diagram.state_resources(stack, root=self._root, environ=self._environ)
        return diagram.render_svg(diagram.build_graph(resources, stack=stack, source="state"))


class Monitor:
    """The last view of each stack, made again when older than `max_age` seconds.

    A stack is looked at by one thread at a time: a request arriving while the probes run waits
    for their view instead of starting another run. A source that raises something other than
    the OpsError it handles becomes a view with that problem, never a failed page."""

    def __init__(self, source: Source, stacks: Sequence[str], *, max_age: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.source = source
        self.stacks = tuple(dict.fromkeys(stacks))
        self.max_age = max_age
        self._clock = clock
        self._locks = {s: threading.Lock() for s in self.stacks}
        self._views: dict[str, tuple[float, StackView]] = {}
        self._diagram_lock = threading.Lock()
        self._diagrams: dict[str, tuple[float, str | OpsError]] = {}

    def __contains__(self, stack: object) -> bool:
        return stack in self._locks

    def view(self, stack: str) -> StackView:
        with self._locks[stack]:
            cached = self._views.get(stack)
            if cached is not None and self._clock() - cached[0] < self.max_age:
                return cached[1]
            try:
                view = self.source.view(stack)
            except Exception as e:  # noqa: BLE001 - a bug in one stack's look must not take the page down
                view = StackView(stack, problem=Problem(f"the dashboard could not look: {type(e).__name__}: {e}"))
            self._views[stack] = (self._clock(), view)
            return view

    def diagram_svg(self, stack: str) -> str:
        """The stack's diagram (drawn at most once per `max_age`); OpsError when it cannot be."""
        with self._diagram_lock:
            cached = self._diagrams.get(stack)
            if cached is None or self._clock() - cached[0] >= self.max_age:
                try:
                    drawn: str | OpsError = self.source.diagram_svg(stack)
                except OpsError as e:
                    drawn = e
                cached = (self._clock(), drawn)
                self._diagrams[stack] = cached
        if isinstance(cached[1], OpsError):
            raise cached[1]
        return cached[1]
