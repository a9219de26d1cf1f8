"""ACS fault actions as plain values (the plan converts the inventory's `acs:` fault rules into
these; the ACS service applies them to the CPE's request it matched).

- `fault`: answer the request with this CWMP fault (8000-8005, TR-069 Amendment 3 §A.5.1 Table
  60) instead of its response; 8005 "Retry request" makes the CPE retry the session later;
- `delay`: seconds before the answer;
- `drop`: close the connection without an answer (the session is dropped);
- `unauthorized`: answer 401 with a fresh challenge, whatever the credentials;
- `wrong_id`: the answer carries another cwmp:ID than the request's (§3.4.4 says they match).
"""

from __future__ import annotations

from dataclasses import dataclass

ACS_FAULT_CODES = (8000, 8001, 8002, 8003, 8004, 8005)


@dataclass(frozen=True, slots=True)
class AcsFaultAction:
    fault: int | None = None
    delay: float | None = None
    drop: bool = False
    unauthorized: bool = False
    wrong_id: bool = False
