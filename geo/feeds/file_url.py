"""A request file at a URL (CSV, JSON, GeoJSON, as ``hotspot311 ingest`` reads them).

The whole file is one page. The watermark keeps the file's ``ETag``, ``Last-Modified``
and SHA-1: the next sync asks with ``If-None-Match`` / ``If-Modified-Since`` and skips
a file that is unchanged (304, or the same bytes).
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Final
from urllib.parse import urlparse

from geo.feeds.client import FeedClient, readable
from geo.feeds.records import Page
from geo.ingest.readers import read_requests
from geo.store.sources import SourceConfig
from hotspot311.errors import FeedError, InputError

DEFAULT_COLUMNS: Final[dict[str, str]] = {}


def pages(config: SourceConfig, client: FeedClient, *, watermark: dict[str, str] | None,
          now: datetime) -> Iterator[Page]:
    """The file as one page, or nothing when it has not changed since ``watermark``.

    Raises
    ------
    FeedError
        When the file cannot be read as requests (the reader's message, with the URL).
    """
    wm = watermark or {}
    headers = {}
    if wm.get("etag"):
        headers["If-None-Match"] = wm["etag"]
    if wm.get("last_modified"):
        headers["If-Modified-Since"] = wm["last_modified"]
    response = client.get(config.url, page=1, headers=headers)
    if response.status_code == 304:
        return
    data = response.content
    digest = hashlib.sha1(data).hexdigest()
    if digest == wm.get("sha1"):
        return
    mark = {"sha1": digest}
    for header, key in (("ETag", "etag"), ("Last-Modified", "last_modified")):
        if response.headers.get(header):
            mark[key] = response.headers[header]
    suffix = PurePosixPath(urlparse(config.url).path).suffix.lower()
    suffix = suffix if suffix in (".csv", ".json", ".geojson") else ".txt"
    with tempfile.TemporaryDirectory(prefix="hotspot311-feed-") as tmp:
        path = Path(tmp) / f"{config.name}{suffix}"
        path.write_bytes(data)
        try:
            raw = read_requests(path, fmt=config.options.get("format", "auto"))
        except InputError as err:
            message = str(err).replace(str(path), "the file")
            raise FeedError(message, source=config.name, url=config.url, page=1) from err
    yield Page(raw.frame, raw.format, mark, readable(response.url), 1)
