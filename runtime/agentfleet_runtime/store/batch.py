"""Automatic pipelining of Lua script calls: many tasks' checkpoints share one round trip.

With hundreds of tasks in one worker, sending each checkpoint on its own costs a pool checkout,
a write syscall and a read per call. The batcher queues calls made during one event-loop turn and
sends them as one pipeline (no MULTI: the scripts are atomic one by one, and the batch need not
be). One task alone sees the same latency as a direct call; many tasks share the syscalls.

The round trip is done here rather than with redis-py's ``Pipeline``: that one arms a timer per
reply (a socket timeout per read) and runs each reply through its command machinery, which cost
more CPU than the scripts' own work. Here one timeout covers the whole batch, the replies are read
straight off the connection, and connection errors are retried with the client's ``Retry`` (the
same policy as every other command; re-sending is safe because the scripts are idempotent per step).

Order: calls are sent in the order they were made; with several batches in flight, two batches
may run interleaved, which is harmless because one task never has two calls outstanding (each
caller awaits its call). A NOSCRIPT reply (Redis restarted and lost its script cache) reloads
the script and re-sends just that call.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from typing import Any

from redis.asyncio.client import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

try:  # redis-py's hiredis parser: its replies can be read without a coroutine stack per reply
    from redis._parsers.hiredis import NOT_ENOUGH_DATA as _NOT_ENOUGH_DATA
    from redis._parsers.hiredis import _AsyncHiredisParser
except ImportError:  # pragma: no cover - hiredis is a dependency; the generic path stays correct
    _AsyncHiredisParser = None

MAX_BATCH = 256
# Batches in flight at once, each on its own pooled connection: while Redis runs one, the next is
# already on the wire, so Redis never idles waiting for this process to read a reply and write
# the next batch. Calls of one task never overlap (each is sent once the one before it has
# answered: loop.py chains a step's checkpoints), so their order is kept.
MAX_IN_FLIGHT = 4
DEFAULT_TIMEOUT = 30.0  # a batch's round trip, when the client has no socket timeout

_Item = tuple[AsyncScript, list[str], list[Any], asyncio.Future[Any]]


class ScriptBatcher:
    def __init__(self, r: Redis, max_batch: int = MAX_BATCH, max_in_flight: int = MAX_IN_FLIGHT) -> None:
        self.r = r
        self.max_batch = max_batch
        self.max_in_flight = max_in_flight
        self._queue: list[_Item] = []
        self._idle: list[asyncio.Future[None]] = []  # one per sender waiting for work
        self._tasks: set[asyncio.Task[None]] = set()
        self._kicked = False  # a sender is on its way to take the queue: no need to wake another
        self._unsent: dict[asyncio.Future[Any], list[Any]] = {}  # queued calls' arguments, by reply

    def call(self, script: AsyncScript, keys: list[str], args: list[Any]) -> asyncio.Future[Any]:
        """Queue one EVALSHA; the returned future resolves to its reply (or its error)."""
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append((script, keys, args, fut))
        self._unsent[fut] = args
        if not self._kicked:
            self._kick()
        return fut

    def unsent_args(self, reply: asyncio.Future[Any]) -> list[Any] | None:
        """The arguments of the call whose reply is ``reply`` while it is still queued, for the
        caller to amend in place (they are read when its batch is taken); None once it is taken."""
        return self._unsent.get(reply)

    def _kick(self) -> None:
        """Get one sender to the queue: an idle one, else a new one, unless all are busy (a busy
        sender takes the queue when its batch is done)."""
        while self._idle:
            waiter = self._idle.pop()
            if not waiter.done():
                waiter.set_result(None)
                self._kicked = True
                return
        if len(self._tasks) < self.max_in_flight:
            task = asyncio.create_task(self._run(), name="script-batcher")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            self._kicked = True

    async def _run(self) -> None:
        # Each sender keeps one pooled connection for as long as it lives: a checkout per batch
        # (the pool's lock, timeout and health check) cost more than the batch's own bookkeeping.
        # A connection that breaks is reconnected by the next send (redis-py connects on demand).
        loop = asyncio.get_running_loop()
        pool = self.r.connection_pool
        conn: Any = None
        try:
            while True:
                if not self._queue:
                    waiter: asyncio.Future[None] = loop.create_future()
                    self._idle.append(waiter)
                    await waiter
                await asyncio.sleep(0)  # let the other tasks ready in this turn queue their calls
                self._kicked = False
                if not self._queue:
                    continue
                batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
                unsent = self._unsent
                for item in batch:
                    unsent.pop(item[3], None)
                if self._queue:
                    self._kick()  # more than one batch waiting: another sender takes the next
                if conn is None:
                    try:
                        conn = await pool.get_connection()
                    except Exception as e:
                        _fail_all(batch, e)
                        continue
                await self._send(batch, conn)
        finally:
            if conn is not None:
                await pool.release(conn)

    async def _send(self, batch: list[_Item], conn: Any) -> None:
        commands = [("EVALSHA", script.sha, len(keys), *keys, *args) for script, keys, args, _ in batch]
        try:

            async def failed(_error: Exception) -> None:
                await conn.disconnect()

            results = await conn.retry.call_with_retry(lambda: _round_trip(conn, commands), failed)
        except Exception as e:  # the whole round trip failed (after the client's retries)
            _fail_all(batch, e)
            return
        again = []
        for item, res in zip(batch, results, strict=True):
            fut = item[3]
            if fut.done():  # the caller was cancelled; the script ran (or not) all the same
                continue
            if isinstance(res, NoScriptError):
                again.append(item)
            elif isinstance(res, Exception):
                fut.set_exception(res)
            else:
                fut.set_result(res)
        if again:
            try:
                for script in {id(i[0]): i[0] for i in again}.values():
                    await self.r.script_load(script.script)
            except Exception as e:
                _fail_all(again, e)
                return
            self._queue[:0] = again
            if not self._kicked:
                self._kick()

    async def close(self) -> None:
        tasks, self._tasks = list(self._tasks), set()
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        self._idle.clear()
        self._unsent.clear()
        self._kicked = False


def _fail_all(batch: list[_Item], e: BaseException) -> None:
    for *_, fut in batch:
        if not fut.done():
            fut.set_exception(e)


async def _round_trip(conn: Any, commands: list[tuple[Any, ...]]) -> list[Any]:
    """Write all commands at once, then read one reply each; a reply that is an error is returned
    in its place (the others stand). Any other failure leaves the connection closed."""
    try:
        async with asyncio.timeout(conn.socket_timeout or DEFAULT_TIMEOUT):
            await conn.send_packed_command(conn.pack_commands(commands))
            parser = getattr(conn, "_parser", None)
            if (
                _AsyncHiredisParser is not None
                and isinstance(parser, _AsyncHiredisParser)
                and getattr(parser, "_reader", None) is not None
            ):
                return await _read_replies_hiredis(conn, parser, len(commands))
            out: list[Any] = []
            for _ in commands:
                try:
                    # math.inf: no timer per reply, the batch's timeout above covers them all.
                    out.append(await conn.read_response(timeout=math.inf))
                except ResponseError as e:
                    out.append(e)
            return out
    except TimeoutError:
        # The read was cancelled mid-reply: redis-py closed the connection, so nothing desyncs.
        await conn.disconnect()
        raise RedisTimeoutError("Timeout running a batch of scripts") from None


async def _read_replies_hiredis(conn: Any, parser: Any, n: int) -> list[Any]:
    """``n`` replies straight off hiredis's reader: what ``conn.read_response`` does per reply
    (three coroutine frames, a timeout check, an error translation), once for the batch. Replies
    that are errors come back as exception objects (ResponseError and its kinds, as redis-py maps
    them) and stay in their place; anything else that fails closes the connection, as redis-py
    does, so a half-read batch can never be mistaken for the next one's replies."""
    reader = parser._reader
    push_type = getattr(parser, "_hiredis_PushNotificationType", None)
    out: list[Any] = []
    try:
        while len(out) < n:
            reply = reader.gets()
            if reply is _NOT_ENOUGH_DATA:
                await parser.read_from_socket()
                continue
            if push_type is not None and isinstance(reply, push_type):  # RESP3 push: not a reply
                await parser.handle_push_response(reply)
                continue
            if isinstance(reply, BaseException) and not isinstance(reply, ResponseError):
                raise reply  # e.g. LOADING (a ConnectionError): retried like any connection error
            out.append(reply)
    except OSError as e:  # as read_response: a socket error is a (retryable) Redis connection error
        await conn.disconnect(nowait=True)
        raise RedisConnectionError(f"Error while reading a batch of script replies: {e}") from e
    except BaseException:
        await conn.disconnect(nowait=True)
        raise
    if conn.health_check_interval:  # as read_response does: a used connection needs no PING
        conn.next_health_check = asyncio.get_running_loop().time() + conn.health_check_interval
    return out
