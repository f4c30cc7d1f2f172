"""HTTP plumbing shared by the REST handlers: errors, exact JSON responses, body parsing."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from .records import RecordedRequest, UploadedFile

# Where the middleware leaves each request's record for the handlers (web.RequestKey from aiohttp 3.14 on).
RECORD: Any = web.RequestKey("record", RecordedRequest) if hasattr(web, "RequestKey") else "record"


class ApiError(Exception):
    """An error answer in Discord's shape: {"message": ..., "code": ...}."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(f"{status} ({code}): {message}")
        self.status = status
        self.code = code
        self.message = message


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    # Content-Type must be exactly "application/json": discord.py's json_or_text parses nothing else, and
    # web.Response(text=...) would append "; charset=utf-8" (bot-anchors.md §4.4).
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    return web.Response(status=status, body=json.dumps(data).encode(), headers=all_headers)


def error_response(error: ApiError) -> web.Response:
    return json_response({"message": error.message, "code": error.code}, status=error.status)


async def read_body(request: web.Request) -> tuple[Any, list[UploadedFile]]:
    """The JSON body, or a multipart body's payload_json plus its files[N] parts."""
    if request.content_type == "multipart/form-data":
        payload: Any = None
        files = []
        reader = await request.multipart()
        async for part in reader:
            data = await part.read()  # type: ignore[union-attr]
            if part.name == "payload_json":
                payload = json.loads(data)
            elif part.filename is not None:
                content_type = part.headers.get("Content-Type", "application/octet-stream")
                files.append(UploadedFile(part.name or "", part.filename, content_type, bytes(data)))
        return payload, files
    raw = await request.read()
    if not raw:
        return None, []
    try:
        return json.loads(raw), []
    except ValueError:
        raise ApiError(400, 50109, "The request body contains invalid JSON.") from None
