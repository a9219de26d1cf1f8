"""TR-069 (CWMP): the RPC values, the SOAP codec and the sans-IO ACS and CPE sessions.

- `rpc`: every RPC of the MPP chapter's list and its response, and `rpc.Fault` (CWMP faults);
- `values`: typed parameter values (`Value`) and `CwmpError` (a `CodecError`);
- `soap`: `Envelope(id, hold_requests, body, ns)`, `encode`, `decode`, `EMPTY` (the empty POST);
- `acs_session.AcsSession` / `AcsReply`, `cpe_session.CpeSession` / `Post` / `CpeStep`;
- `codes`: the fault codes and their SOAP faultcode; `summary.summarize` for the event log.
(`faults.py`, the ACS's fault-rule actions, belongs to the kit's ACS service.)
"""

from labkit.protocols.cwmp.acs_session import AcsReply, AcsSession
from labkit.protocols.cwmp.cpe_session import CpeSession, CpeStep, Post
from labkit.protocols.cwmp.soap import EMPTY, Envelope, decode, encode
from labkit.protocols.cwmp.values import CwmpError, Value

__all__ = ["EMPTY", "AcsReply", "AcsSession", "CpeSession", "CpeStep", "CwmpError", "Envelope", "Post",
           "Value", "decode", "encode"]
