"""The typed model of a mapping: what `spec.load_mapping` compiles a file into."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.mapping.expr import Expression, Path, Template

Tree = Callable[[Mapping[str, Any]], Any]


@dataclass(frozen=True)
class ListWrite:
    """Write a value as one item of a list: ``{list: custom_fields, item: {id: 7}}``."""

    list: str
    item: Mapping[str, Any]


@dataclass(frozen=True)
class FieldSpec:
    name: str
    label: str
    read: Path
    type: str = "text"
    write: str | ListWrite | None = None
    extension: str | ListWrite | None = None  # where a phone number's extension is written
    codec: str = "string"
    searchable: bool = False
    search: Tree | None = None
    match: str = "exact"
    map: Mapping[str, str] = field(default_factory=dict)
    map_out: Mapping[str, str] = field(default_factory=dict)
    options: tuple[tuple[str, str], ...] = ()
    error_key: str | None = None
    error_match: re.Pattern[str] | None = None
    meta: bool = True
    unique: bool = False  # no two upstream records share a value (an email, a handle)

    @property
    def error_keys(self) -> set[str]:
        keys = {self.name}
        if self.error_key:
            keys.add(self.error_key)
        if isinstance(self.write, str):
            keys.add(self.write.split(".")[-1])
        return keys


@dataclass(frozen=True)
class Request:
    method: str
    path: Template
    query: Tree
    headers: Tree
    body: Tree | None
    idempotent: bool = False


@dataclass(frozen=True)
class CustomFields:
    """How upstream custom field definitions become fields."""

    request: Request
    items: Path
    type: Template
    field: Mapping[str, Any]
    types: Mapping[str, Mapping[str, str]]


@dataclass(frozen=True)
class Join:
    source: Path
    where: str
    equals: Path
    one: bool


# Without the mapping's word: how long a CRM may still be finishing a write whose answer was
# lost, before its search shows what it made.
SETTLE_SECONDS = 60.0


@dataclass(frozen=True)
class ObjectSpec:
    kind: str
    id: Path
    url: Template
    fields: tuple[FieldSpec, ...]
    joins: Mapping[str, Join]
    custom_fields: CustomFields | None
    # A customer's: when the CRM made a record. A customer's and a case's: how long after a
    # create's answer was lost what it made may stay out of what the gateway looks through
    # for it (docs/behaviour.md §1.4, §1.7).
    created_at: Path | None = None
    settle_seconds: float = SETTLE_SECONDS


@dataclass(frozen=True)
class Paging:
    """How a step reads every page: the next page's URL, a cursor for a query parameter, or
    numbered pages; each answer is one page, and ``more`` (when given) must hold to go on."""

    next_url: Path | None = None
    cursor: Path | None = None
    cursor_param: str | None = None
    page_param: str | None = None
    more: Path | None = None
    max_pages: int = 10


@dataclass(frozen=True)
class Step:
    name: str
    request: Request
    when: Expression | None
    for_each: Expression | None
    not_found: str | None
    existing_interactions: Path | None
    restart_on_conflict: bool = False
    # A 2xx answer that may still report failure: its messages, and which of them do.
    answer_messages: Path | None = None
    answer_failed: re.Pattern[str] | None = None
    paginate: Paging | None = None
    # Over the answer: the keys of the interactions recorded on the record (where callers
    # cannot write), so those are not added again.
    recorded_interactions: Path | None = None
    # A write whose outcome is unknown (timed out, dropped, 5xx) runs the operation again
    # from its first step, which reads what the write did.
    restart_on_unknown: bool = False
    # Over the answer: the writes of interactions on the record, read back (for the case
    # object's `interactions`). A step with it runs only when those are asked for.
    interactions: WrittenInteractions | None = None


@dataclass(frozen=True)
class WrittenInteractions:
    """Where a step's answer holds the interactions earlier writes added: each write (an
    audit, a comment) and, over one write, its text and (where callers cannot write) the
    records of the interactions it added, in the order of their texts."""

    writes: Path
    text: Path
    records: Path | None = None


@dataclass(frozen=True)
class OperationSpec:
    """What the mapping does for one operation of the API (`gateway.operation.Operation`):
    its steps, and where the result is in their answers."""

    name: str
    steps: tuple[Step, ...]
    result: Path


@dataclass(frozen=True)
class Strategy:
    """One way best match finds customers (docs/mappings.md, `strategies`): each value that
    `values` finds in the body is looked up as `find` says, and every customer it leads to
    scores `score`."""

    find: str  # `customers` holding `field`; `case`, read by id; `cases` holding `field`
    field: str | None  # a customer field (find: customers) or a case field (find: cases)
    values: Expression  # over `body` and `handles` (network -> handles)
    match: str | None = None  # the re-check (default: the field's)
    score: int = 1

    @property
    def name(self) -> str:
        """What logs call it: its field, or the case."""
        return self.field or self.find


@dataclass(frozen=True)
class AuthRule:
    when: Expression
    headers: Tree
    basic: tuple[Template, Template] | None


@dataclass(frozen=True)
class ErrorSpec:
    type: Path | None
    message: Path | None
    fields: Path | None
    field_message: Path | None
    field_key: Path | None
    idempotency_mismatch: str | None = None
    messages: Path | None = None


@dataclass(frozen=True)
class RateLimitSpec:
    """How the CRM's rate limits are read: `narrow` (JMESPath over a limiting answer's
    `{status, headers, body}`, header names in lower case) is true when the answer limits less
    than the whole account; it then holds only the requests of the same `scope` (a template
    over the request's `method`, rendered `path` and `route`)."""

    narrow: Path
    scope: Template


@dataclass(frozen=True)
class Interactions:
    marker: Template
    template: Template
    separator: str
    # The constant start of every marker: caller text is cleaned of it, so it cannot fake one.
    marker_prefix: str = ""
    # What follows the key in every marker, when a marker is its prefix, the key and this
    # (else None: markers cannot be read back into keys).
    marker_suffix: str | None = None
    # One interaction's text as `template` writes it, its parts in named groups (`body`,
    # `author_name`, ...): how a written interaction is read back.
    parse: re.Pattern[str] | None = None
    # What a write records for each interaction it adds (over `i` and `key`), and how many
    # bytes of records one write may carry (0: no limit); more interactions take more writes.
    record: Template | None = None
    record_bytes: int = 0


@dataclass(frozen=True)
class LabelSource:
    """Where Hybrid Chat's labels come from (the mapping's `expertflow.labels`)."""

    lookup: Request | None  # asked first; its answer is `lookup` in `request`'s templates
    request: Request | None  # labels read from the upstream, or
    declared: tuple[tuple[str, str], ...]  # a declared set of (key, name)
    items: Path | None
    key: Path
    name: Path
    of_customer: Path
    names: Mapping[str, str]
    colors: Mapping[str, str]
    default_color: str


@dataclass(frozen=True)
class PriorityRoutingSpec:
    """Hybrid Chat's priority routing (the mapping's `expertflow` section): the customer a
    phone number belongs to, and the labels that route it."""

    phone_field: str
    updated: Path
    customer: Mapping[str, Template]
    phones: Template | None
    labels: LabelSource


@dataclass(frozen=True)
class MappingSpec:
    file: str
    name: str
    auth: tuple[AuthRule, ...]
    headers: Tree
    oauth_token_url: str | None
    readiness: Request | None
    errors: ErrorSpec
    objects: Mapping[str, ObjectSpec]
    interactions: Interactions
    operations: Mapping[str, OperationSpec]  # by name: the API's operations the mapping runs
    strategies: tuple[Strategy, ...]
    priority_routing: PriorityRoutingSpec | None
    verify_writes: bool = False
    rate_limits: RateLimitSpec | None = None
    # Cases holding a case field's value (best match's `find: cases`), when the mapping says.
    search_cases: OperationSpec | None = None
