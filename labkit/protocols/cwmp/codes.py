"""CWMP fault codes (TR-069 Amendment 3, §A.5.1 Table 60 for the ACS, §A.5.2 Table 61 for the
CPE) and the SOAP faultcode ("Client" or "Server") the spec gives each one."""

from __future__ import annotations

# code: (SOAP faultcode, fault string)
ACS_FAULTS: dict[int, tuple[str, str]] = {
    8000: ("Server", "Method not supported"),
    8001: ("Server", "Request denied (no reason specified)"),
    8002: ("Server", "Internal error"),
    8003: ("Client", "Invalid arguments"),
    8004: ("Server", "Resources exceeded"),
    8005: ("Server", "Retry request"),
}
CPE_FAULTS: dict[int, tuple[str, str]] = {
    9000: ("Server", "Method not supported"),
    9001: ("Server", "Request denied (no reason specified)"),
    9002: ("Server", "Internal error"),
    9003: ("Client", "Invalid arguments"),
    9004: ("Server", "Resources exceeded"),
    9005: ("Client", "Invalid parameter name"),
    9006: ("Client", "Invalid parameter type"),
    9007: ("Client", "Invalid parameter value"),
    9008: ("Client", "Attempt to set a non-writable parameter"),
    9009: ("Server", "Notification request rejected"),
    9010: ("Server", "File transfer failure"),
    9011: ("Server", "Upload failure"),
    9012: ("Server", "File transfer server authentication failure"),
    9013: ("Server", "Unsupported protocol for file transfer"),
    9014: ("Server", "File transfer failure: unable to join multicast group"),
    9015: ("Server", "File transfer failure: unable to contact file server"),
    9016: ("Server", "File transfer failure: unable to access file"),
    9017: ("Server", "File transfer failure: unable to complete download"),
    9018: ("Server", "File transfer failure: file corrupted"),
    9019: ("Server", "File transfer failure: file authentication failure"),
}

METHOD_NOT_SUPPORTED, REQUEST_DENIED, INTERNAL_ERROR, INVALID_ARGUMENTS = 9000, 9001, 9002, 9003
RESOURCES_EXCEEDED = 9004
INVALID_NAME, INVALID_TYPE, INVALID_VALUE, NOT_WRITABLE = 9005, 9006, 9007, 9008
NOTIFICATION_REJECTED, TRANSFER_FAILURE, UNSUPPORTED_PROTOCOL = 9009, 9010, 9013
CONTACT_FAILURE, ACCESS_FAILURE, INCOMPLETE, CORRUPTED, AUTH_FAILURE = 9015, 9016, 9017, 9018, 9019
FILE_SERVER_AUTH = 9012
ACS_METHOD_NOT_SUPPORTED, ACS_DENIED, ACS_INTERNAL, ACS_INVALID_ARGUMENTS = 8000, 8001, 8002, 8003
ACS_RESOURCES, ACS_RETRY = 8004, 8005


def soap_faultcode(code: int) -> str:
    """The spec's faultcode for `code`; vendor and unlisted codes are "Server"."""
    known = ACS_FAULTS.get(code) or CPE_FAULTS.get(code)
    return known[0] if known else "Server"


def fault_string(code: int) -> str:
    known = ACS_FAULTS.get(code) or CPE_FAULTS.get(code)
    return known[1] if known else f"Fault {code}"
