"""LabStatus.apply and the phone's timeline row in one call (labkit/native/_fold.c)."""

from typing import Any

class Fold:
    """Fold(ops, status, ops_globals, Event, ServiceCounters, PhoneStatus, Timeline, Counter,
    NOT_REQUESTS, MALFORMED_RESULTS, FINE, phone_template, timeline_template): bound to one LabOps
    and its LabStatus; a new phone's record and timeline copy the templates' slots (None: the
    class is called)."""

    def __init__(self, ops: Any, status: Any, ops_globals: dict[str, Any], event_type: type,
                 counters_type: type, phone_type: type, timeline_type: type, counter_type: type,
                 not_requests: frozenset[str], malformed: frozenset[str], fine: frozenset[str],
                 phone_template: Any, timeline_template: Any) -> None: ...
    def apply(self, event: Any) -> Any:
        """The phone whose status changed, None (no phone), or NotImplemented: an event left to the
        Python path (status.apply and Timeline.append_event), nothing changed yet."""
    def deliver(self, event: Any) -> None:
        """LabOps.__call__(event), compiled: apply, else ops._reference(event); ops._tell_phone(phone)
        when ops.subscribers is not empty; ops(event) once ops.fold is None."""
