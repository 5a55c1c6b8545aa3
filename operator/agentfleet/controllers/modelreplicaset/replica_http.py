"""The operator's HTTP to a replica (adapter API, /metrics): no redirect followed, no proxy asked.

A replica runs the image its ModelReplicaSet's author chose, so what it answers is untrusted. A
302 from it must not carry the replicas' API key to another host (urllib follows redirects with
the request's headers), nor make the operator read a page it could not name itself; and a proxy
from the operator's environment must not see the key either. Refused redirects surface as
``urllib.error.HTTPError`` with the 3xx code; callers report fixed texts and log the details.
"""

from __future__ import annotations

import urllib.request
from typing import Any


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> None:
        return None  # urllib then raises HTTPError(code): the target is never contacted


OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), _RefuseRedirects)


def is_redirect(code: int) -> bool:
    return 300 <= code < 400
