"""Types shared by the three resources: base model, conditions, references."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from agentfleet_contract.rules import Rule, violations

GROUP = "agentfleet.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

# RFC 1123 DNS label / subdomain, as Kubernetes names objects.
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
# A Kubernetes resource quantity such as 80Gi, 512Mi or 1.5.
# A Secret the operator reads, sends or mounts for a spec must carry this label with value "true":
# naming a Secret in a spec is not enough (who may create an AgentFleet need not be allowed to use
# every Secret of the namespace). `kubectl label secret NAME agentfleet.io/consent=true`.
CONSENT_LABEL = "agentfleet.io/consent"
CONSENT_VALUE = "true"

QUANTITY = r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$"
# Money as a decimal string, never a float: "0.50".
DECIMAL = r"^[0-9]+(\.[0-9]{1,9})?$"


class Model(BaseModel):
    """Base of every API type: camelCase on the wire, unknown fields refused.

    Subclasses list their cross-field ``rules``; each is rendered into the CRD as CEL and also
    checked here, so both layers refuse the same objects with the same message.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        validate_default=False,
    )
    rules: ClassVar[tuple[Rule, ...]] = ()

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        own = cls.__dict__.get("rules")
        if own:
            extra = dict(cls.model_config.get("json_schema_extra") or {})
            extra["x-kubernetes-validations"] = [r.schema() for r in own if r.in_schema]
            cls.model_config = {**cls.model_config, "json_schema_extra": extra}

    @model_validator(mode="after")
    def _check_rules(self) -> Model:
        broken = violations(self, type(self).__dict__.get("rules", ()))
        if broken:
            raise ValueError("; ".join(broken))
        return self

    def wire(self) -> dict[str, Any]:
        """The object as the API server stores it: camelCase, unset fields left out."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


def _pruned(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _pruned(v) for k, v in value.items() if v not in ({}, [])}
    return value


def default_obj(description: str, factory: type[Model], **kw: Any) -> Any:
    """A nested object the API server fills in when it is left out.

    The schema default is the fully defaulted object, not {}: the API server checks a default
    against the object's CEL rules without first applying the nested defaults.
    """
    return Field(
        default_factory=factory, description=description, json_schema_extra={"default": _pruned(factory().wire())}, **kw
    )


class LocalObjectReference(Model):
    name: str = Field(max_length=253, pattern=DNS_SUBDOMAIN, description="Name of the object in the same namespace.")


class SecretKeyRef(Model):
    name: str = Field(
        max_length=253,
        pattern=DNS_SUBDOMAIN,
        description=(
            "Name of the Secret in the same namespace; the operator uses it only if it carries the label "
            "agentfleet.io/consent=true."
        ),
    )
    key: str = Field(max_length=253, description="Key inside the Secret whose value is used.")


class ConfigMapKeyRef(Model):
    name: str = Field(max_length=253, pattern=DNS_SUBDOMAIN, description="Name of the ConfigMap in the same namespace.")
    key: str = Field(max_length=253, description="Key inside the ConfigMap whose value is used.")


class Toleration(Model):
    key: str | None = Field(
        default=None, max_length=316, description="Taint key the toleration matches; empty matches all keys."
    )
    operator: Literal["Exists", "Equal"] = Field(
        default="Equal", description="Exists matches any value; Equal matches value."
    )
    value: str | None = Field(default=None, max_length=63, description="Taint value to match when operator is Equal.")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        default=None, description="Taint effect to match; empty matches all effects."
    )
    toleration_seconds: int | None = Field(
        default=None, ge=0, description="How long a NoExecute taint is tolerated before eviction; unset means forever."
    )


ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(Model):
    type: str = Field(
        max_length=316,
        pattern=r"^[A-Z][A-Za-z0-9]*$",
        description="Kind of condition, e.g. Ready, Progressing, Degraded.",
    )
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: str = Field(
        max_length=1024,
        pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$",
        description="CamelCase reason for the last transition.",
    )
    message: str = Field(default="", max_length=32768, description="Human-readable details of the last transition.")
    observed_generation: int = Field(
        default=0, ge=0, description="metadata.generation this condition was computed from."
    )
    last_transition_time: datetime = Field(
        description="When status last changed; not moved when only reason or message change."
    )


SleepState = Literal["Awake", "Sleeping", "Waking"]


class SleepStatus(Model):
    """Scale to zero, as the autoscaler reports it (one block for both kinds that can sleep)."""

    state: SleepState = Field(
        description=(
            "Awake (serving or idle), Sleeping (at zero after the idle time) or Waking (work arrived, not ready yet)."
        )
    )
    since: datetime = Field(description="When the object entered this state.")
    idle_since: datetime | None = Field(
        default=None, description="While awake: since when nothing was queued, in flight or running (unset when busy)."
    )
    last_wake_seconds: float | None = Field(
        default=None,
        ge=0,
        description="Seconds from the last wake signal (a task queued) to the first ready replica or worker.",
    )


CONDITIONS_LIST = {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]}


def unique_keys(field: str, key: str, keys: list[str]) -> None:
    """A list-map's keys, checked in the model as the schema's x-kubernetes-list-map-keys checks them
    on the API server: a duplicate is refused naming the field and the key."""
    dup = sorted({k for k in keys if keys.count(k) > 1})
    if dup:
        raise ValueError(f"{field} {key}s must be unique; duplicated: {', '.join(dup)}")


def conditions_field() -> Any:
    return Field(
        default_factory=list,
        max_length=32,
        description="Latest observations of the object's state; Ready summarises the others.",
        json_schema_extra=CONDITIONS_LIST,
    )


__all__ = [
    "API_VERSION",
    "CONDITIONS_LIST",
    "Condition",
    "ConditionStatus",
    "SleepState",
    "SleepStatus",
    "ConfigMapKeyRef",
    "DECIMAL",
    "DNS_LABEL",
    "DNS_SUBDOMAIN",
    "GROUP",
    "LocalObjectReference",
    "Model",
    "QUANTITY",
    "Rule",
    "SecretKeyRef",
    "Toleration",
    "VERSION",
    "conditions_field",
    "default_obj",
]
