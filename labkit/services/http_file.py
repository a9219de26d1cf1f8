"""A file from the lab's folder over HTTP: aiohttp's FileResponse without its thread pool.

FileResponse opens, stats and closes the file on the loop's default thread pool, so that a slow
(network) disk cannot stall the loop. The lab's files are on a local disk, where an open and an
fstat cost a few microseconds, and in a storm the pool's hand-offs (a submit on the loop, a
thread woken, the GIL passed back and forth) were the largest part of a worker's CPU
(bench/README.md, storm). `LocalFileResponse` does FileResponse's own steps in the same order
(the same conditional, range and encoding answers; its own code decides them) on the loop
itself. Where the installed aiohttp lacks the steps it calls, `file_response` gives the stock
FileResponse.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp import hdrs, web
from aiohttp import web_fileresponse as fileresponse

_STEPS = ("_make_response", "_prepare_open_file", "_precondition_failed", "_not_modified")
_RESULT: Any = getattr(fileresponse, "_FileResponseResult", None)
SUPPORTED = _RESULT is not None and all(hasattr(web.FileResponse, step) for step in _STEPS)


class LocalFileResponse(web.FileResponse):
    """FileResponse.prepare with the file opened, checked and closed on the loop."""

    async def prepare(self, request: web.BaseRequest) -> Any:
        accept_encoding = request.headers.get(hdrs.ACCEPT_ENCODING, "").lower()
        try:
            result, fobj, st, encoding = self._make_response(request, accept_encoding)
        except PermissionError:
            self.set_status(web.HTTPForbidden.status_code)
            return await web.StreamResponse.prepare(self, request)
        except OSError:  # missing, or a symlink loop
            self.set_status(web.HTTPNotFound.status_code)
            return await web.StreamResponse.prepare(self, request)
        if result is _RESULT.NOT_ACCEPTABLE:  # not a regular file
            self.set_status(web.HTTPForbidden.status_code)
            return await web.StreamResponse.prepare(self, request)
        if result is _RESULT.PRE_CONDITION_FAILED:
            return await self._precondition_failed(request)
        if result is _RESULT.NOT_MODIFIED:
            return await self._not_modified(request, f"{st.st_mtime_ns:x}-{st.st_size:x}",
                                            st.st_mtime)
        assert fobj is not None  # SEND_FILE: the one result that opens the file
        try:
            return await self._prepare_open_file(request, fobj, st, encoding)
        finally:
            fobj.close()


def file_response(path: Path, headers: dict[str, str]) -> web.FileResponse:
    """The response that sends `path`: LocalFileResponse where this aiohttp allows it."""
    if SUPPORTED:
        return LocalFileResponse(path, headers=headers)
    return web.FileResponse(path, headers=headers)
