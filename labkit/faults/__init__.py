"""Fault rules at run time: a pure engine (rules, clock and randomness passed in) and typed
per-service hooks handed to services through their start context.

The rule schema lives with the inventory model (`labkit.inventory.faults`); the plan converts
rules into `engine.Rule`s whose action is the plain, frozen action type each protocol core
declares (`DhcpFaultAction`, `DnsFaultAction`, `TftpFaultAction`, `HttpFaultAction`).
"""

# Transitional: the old single-module API, until every service takes typed hooks from its
# start context (issue 9). Removed with labkit/faults/legacy.py.
from labkit.faults.legacy import *  # noqa: F403
from labkit.faults.legacy import (
    DhcpFault,
    DnsFault,
    FaultEngine,
    FaultError,
    FaultHooks,
    FaultRule,
    Fired,
    HttpFault,
    Request,
    TftpFault,
    describe,
    parse_cli_rule,
)

__all__ = ["DhcpFault", "DnsFault", "FaultEngine", "FaultError", "FaultHooks", "FaultRule", "Fired",
           "HttpFault", "Request", "TftpFault", "describe", "parse_cli_rule"]
