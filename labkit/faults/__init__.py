"""Fault rules at run time: a pure engine (rules, clock and randomness passed in) and typed
per-service hooks handed to services through their start context.

The rule schema lives with the inventory model (`labkit.inventory.faults`); the plan converts
rules into `engine.Rule`s whose action is the plain, frozen action type each protocol core
declares (`DhcpFaultAction`, `DnsFaultAction`, `TftpFaultAction`, `HttpFaultAction`).
"""
