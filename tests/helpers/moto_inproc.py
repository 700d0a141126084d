"""A moto S3 server in this process, whose bucket can be filled without HTTP.

Putting 500,000 objects through moto's HTTP API takes most of an hour; a benchmark or a
test that needs a bucket with a long history puts them straight into the server's backend
(one template object copied under each key) and then talks to the server over HTTP like
any client. The server is moto's own ``ThreadedMotoServer``, on a free loopback port.
"""

from __future__ import annotations

import contextlib
import copy
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from tests.services import require, s3_env


@dataclass
class InProcessMoto:
    endpoint: str
    backend: Any

    def fill(self, bucket: str, keys: Iterable[str], body: bytes = b"[]") -> str:
        """Create every key (same body) in ``bucket``; returns their ETag. The first is a
        real PUT; the others are copies of it sharing its body (listed, never read)."""
        it = iter(keys)
        template = self.backend.put_object(bucket, next(it), body, disable_notification=True)
        store = self.backend.get_bucket(bucket).keys
        for key in it:
            k = copy.copy(template)
            k.name = key
            store[key] = k
        return str(template.etag).strip('"')


@contextlib.contextmanager
def moto_in_process() -> Iterator[InProcessMoto]:
    """The server, with the environment pointing boto3 at it until the block ends."""
    require("s3", "an in-process moto S3 server")
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    env = s3_env(endpoint)
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield InProcessMoto(endpoint, s3_backends[DEFAULT_ACCOUNT_ID]["global"])
    finally:
        server.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
