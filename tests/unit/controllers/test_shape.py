"""Every controller is built in the framework's one shape (agentfleet.reconcile.shape): its passes
expose observe, decide, act and write, and what they use of their controller is typed (no Any);
refuse-and-report happens once, in the framework."""

from __future__ import annotations

import collections.abc
import importlib
import inspect
import pkgutil
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import pytest

import agentfleet.controllers
from agentfleet.reconcile.controller import Controller
from agentfleet.reconcile.events import EventRecorder
from agentfleet.reconcile.shape import STEPS, Refused, Steps, Wants
from agentfleet.rejected import Rejected

# Controllers not yet converted, with the reason. This list may only shrink: a controller not in
# it must have the shape, one in it must still lack it (remove it once converted), and no other
# name may be added (ORIGINALLY_PENDING is fixed).
PENDING: dict[str, str] = {}
ORIGINALLY_PENDING = frozenset({"AgentFleetController", "VectorIndexController"})


def controllers() -> dict[str, type]:
    """Every Controller subclass defined under agentfleet.controllers."""
    found: dict[str, type] = {}
    for info in pkgutil.walk_packages(agentfleet.controllers.__path__, "agentfleet.controllers."):
        module = importlib.import_module(info.name)
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, Controller) and obj is not Controller and obj.__module__ == module.__name__:
                found[obj.__name__] = obj
    return found


def _is_any(hint: Any) -> bool:
    """Any anywhere in a type (a union, a Callable's parameters or result, a container's items),
    except as the value type of a JSON object (``dict[str, Any]``, ``Mapping[str, Any]``)."""
    if hint is Any:
        return True
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (dict, collections.abc.Mapping) and args and args[0] is str and args[1] is Any:
        return False
    flat = [x for a in args for x in (a if isinstance(a, list) else [a])]
    return any(_is_any(a) for a in flat if a is not Ellipsis)


def untyped_services(services: type) -> list[str]:
    """The members of a services Protocol typed Any (or not typed), attributes and methods."""
    out = []
    hints = typing.get_type_hints(services)
    out += [f"{name}: Any" for name, hint in hints.items() if _is_any(hint)]
    for name, member in inspect.getmembers(services, inspect.isfunction):
        if name.startswith("_"):
            continue
        sig = inspect.signature(member)
        params = [p for p in sig.parameters.values() if p.name != "self"]
        method_hints = typing.get_type_hints(member)
        for p in params:
            if p.name not in method_hints or _is_any(method_hints[p.name]):
                out.append(f"{name}({p.name}): Any")
        if "return" not in method_hints or _is_any(method_hints["return"]):
            out.append(f"{name} -> Any")
    return out


def shape_problems(cls: type) -> list[str]:
    """What keeps a controller from the shape; empty when it has it."""
    steps = getattr(cls, "steps", ())
    if not steps:
        return ["names no steps (Controller.steps)"]
    out = []
    for s in steps:
        if not (inspect.isclass(s) and issubclass(s, Steps)):
            out.append(f"{s!r} is not an agentfleet.reconcile.shape.Steps")
            continue
        if inspect.isabstract(s):
            out.append(f"{s.__name__} leaves abstract: {sorted(s.__abstractmethods__)}")
        out += [f"{s.__name__}.{step} is the framework's" for step in STEPS if getattr(s, step) is getattr(Steps, step)]
        if s.run is not Steps.run:
            out.append(f"{s.__name__} overrides run: the order of the steps is the framework's")
        services = getattr(s, "services", None)
        if services is None or not (inspect.isclass(services) and issubclass(services, Protocol)):  # type: ignore[arg-type]
            out.append(f"{s.__name__}.services is not a Protocol")
        else:
            out += [f"{s.__name__}.services {u}" for u in untyped_services(services)]
    return out


FOUND = controllers()


def test_the_controllers_are_found() -> None:
    assert {"ModelReplicaSetController", "AutoscalerController"} <= set(FOUND)
    assert ORIGINALLY_PENDING <= set(FOUND)


@pytest.mark.parametrize("name", sorted(set(FOUND) - set(PENDING)))
def test_every_controller_has_the_four_steps_and_typed_services(name: str) -> None:
    assert shape_problems(FOUND[name]) == []


def test_the_pending_list_only_shrinks() -> None:
    assert set(PENDING) <= ORIGINALLY_PENDING, "a new controller is built in the shape, not added to PENDING"
    for name, why in PENDING.items():
        assert why
        assert shape_problems(FOUND[name]), f"{name} has the shape now: remove it from PENDING"


# --- the checks themselves find what they look for ---


class _TypedServices(Protocol):
    clock: typing.Callable[[], float]

    def fetch(self, targets: dict[str, int]) -> dict[str, int | None]: ...


class _AnyMember(Protocol):
    kube: Any


class _AnyParam(Protocol):
    def fan_out(self, fn: Any, items: list[int]) -> None: ...


class _OptionalAny(Protocol):
    ledger: Any | None


class _AnyResult(Protocol):
    adapter_client: typing.Callable[[str, str | None], Any]
    objects: list[dict[str, Any]]  # JSON objects: allowed


def test_untyped_services_are_found() -> None:
    assert untyped_services(_TypedServices) == []
    assert untyped_services(_AnyMember) == ["kube: Any"]
    assert untyped_services(_AnyParam) == ["fan_out(fn): Any"]
    assert untyped_services(_OptionalAny) == ["ledger: Any"]
    assert untyped_services(_AnyResult) == ["adapter_client: Any"]


class _Complete(Steps[int, int, int]):
    services: ClassVar[type] = _TypedServices

    def observe(self) -> int:
        return 1

    def decide(self, observed: int) -> int:
        return observed

    def act(self, observed: int, plan: int) -> int:
        return plan

    def write(self, observed: int, plan: int, acted: int) -> float | None:
        return None

    def warn(self, reason: str, message: str) -> None:
        pass


class _NoWrite(Steps[int, int, int]):
    services: ClassVar[type] = _TypedServices

    def observe(self) -> int:
        return 1

    def decide(self, observed: int) -> int:
        return observed

    def act(self, observed: int, plan: int) -> int:
        return plan

    def warn(self, reason: str, message: str) -> None:
        pass


def _controller(*steps: type) -> type:
    return type("C", (), {"steps": steps})


def test_shape_problems_are_found() -> None:
    assert shape_problems(_controller(_Complete)) == []
    assert shape_problems(_controller()) == ["names no steps (Controller.steps)"]
    assert any("abstract" in p for p in shape_problems(_controller(_NoWrite)))
    assert shape_problems(_controller(object)) == [f"{object!r} is not an agentfleet.reconcile.shape.Steps"]
    any_services = type("_AnyServicesSteps", (_Complete,), {"services": _AnyMember})
    assert shape_problems(_controller(any_services)) == ["_AnyServicesSteps.services kube: Any"]
    runs_itself = type("_RunsItself", (_Complete,), {"run": lambda self: None})
    assert shape_problems(_controller(runs_itself)) == [
        "_RunsItself overrides run: the order of the steps is the framework's"
    ]


# --- the framework's run: the order of the steps, more reads, refuse-and-report once ---


@dataclass(frozen=True)
class _More(Wants):
    what: str


class _Recorded(Steps[tuple[str, ...], str, str]):
    """Steps that record what ran; decide's answers are scripted."""

    services: ClassVar[type] = _TypedServices

    def __init__(self, answers: list[object], events: EventRecorder) -> None:
        self.answers = answers
        self.events = events
        self.ran: list[str] = []
        self.refusals: list[Refused] = []

    def observe(self) -> tuple[str, ...]:
        self.ran.append("observe")
        return ()

    def observe_more(self, observed: tuple[str, ...], wants: Wants) -> tuple[str, ...]:
        assert isinstance(wants, _More)
        self.ran.append(f"observe {wants.what}")
        return (*observed, wants.what)

    def decide(self, observed: tuple[str, ...]) -> Any:
        self.ran.append(f"decide {observed}")
        answer = self.answers.pop(0)
        if isinstance(answer, Refused) and observed == ("raise",):
            raise answer
        return answer

    def act(self, observed: tuple[str, ...], plan: str) -> str:
        self.ran.append(f"act {plan}")
        return "acted"

    def write(self, observed: tuple[str, ...], plan: str, acted: str) -> float | None:
        self.ran.append(f"write {acted}")
        return 7.0

    def warn(self, reason: str, message: str) -> None:
        self.events.event(OBJ, "Warning", reason, message)

    def write_refusal(self, refused: Refused) -> None:
        self.refusals.append(refused)


OBJ: Mapping[str, Any] = {"metadata": {"name": "a", "namespace": "ns"}}


def _recorder(posted: list[tuple[str, str, str]]) -> EventRecorder:
    return EventRecorder(lambda obj, type_, reason, message: posted.append((type_, reason, message)))


def test_run_calls_the_steps_in_order_and_reads_more_when_decide_wants() -> None:
    s = _Recorded([_More("capacity"), "grow"], _recorder([]))
    assert s.run() == 7.0
    assert s.ran == ["observe", "decide ()", "observe capacity", "decide ('capacity',)", "act grow", "write acted"]


@pytest.mark.parametrize("how", ["returned", "raised"])
def test_a_refusal_is_one_warning_and_the_condition_and_nothing_is_acted_on(how: str) -> None:
    posted: list[tuple[str, str, str]] = []
    events = _recorder(posted)
    refused = Refused("InvalidSpec", "spec.replicas: must be at least 0", "spec.replicas", retry_after=30.0)
    for _ in range(2):  # the same refusal on the next pass posts no second Event
        answers: list[object] = [_More("raise"), refused] if how == "raised" else [refused]
        s = _Recorded(answers, events)
        assert s.run() == 30.0
        assert s.refusals == [refused]
        assert not any(r.startswith(("act", "write")) for r in s.ran)
    assert posted == [("Warning", "InvalidSpec", "spec.replicas: must be at least 0")]


def test_a_plan_that_keeps_wanting_is_an_error_not_a_loop() -> None:
    s = _Recorded([_More(str(i)) for i in range(10)], _recorder([]))
    with pytest.raises(RuntimeError, match="still wants"):
        s.run()


CIDR_422 = 'spec.egress[2].to[0].ipBlock.cidr: Invalid value: "10.0.0.1"'


class _Rejecting(_Recorded):
    """Act applies an object the API server refuses."""

    def act(self, observed: tuple[str, ...], plan: str) -> str:
        self.ran.append(f"act {plan}")
        raise Rejected("NetworkPolicy", "support-gate", 422, CIDR_422)


def test_an_apply_the_api_server_refuses_is_a_warning_on_the_object_and_the_pass_fails() -> None:
    # A 422 from a rendered child stopped the AgentFleet pass before write: its status kept saying
    # Serving and only the operator's log named the field.
    posted: list[tuple[str, str, str]] = []
    events = _recorder(posted)
    for _ in range(2):  # retried with backoff by the work queue; the same Event is posted once
        s = _Rejecting(["plan"], events)
        with pytest.raises(Rejected):
            s.run()
        assert s.ran == ["observe", "decide ()", "act plan"]
    refused = f"the API server refused NetworkPolicy/support-gate (422): {CIDR_422}"
    assert posted == [("Warning", "ApplyRejected", refused)]
