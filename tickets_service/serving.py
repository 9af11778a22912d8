"""The web worker: gunicorn's threaded worker, with every request read off the network in full
before a thread takes it, as a buffering proxy would.

A sync worker reads its client as the client sends, so a few connections that trickle their
headers a byte at a time hold every worker, and the service stops. Here the worker's main loop
reads whatever each connection has sent, without blocking, until the request's head and body
are complete; only then does a thread run the app on it. A slow or idle client costs a socket
and the bytes it sent, never a thread:

- a head must arrive within REQUEST_HEADER_TIMEOUT seconds of its first byte, a body within
  REQUEST_BODY_TIMEOUT of its head, and a connection may stay silent for gunicorn's keepalive
  at most: 408 in the envelope, then the connection is closed;
- a head over HEAD_LIMIT bytes is 431; a body over MAX_CONTENT_LENGTH is read and thrown away
  as it comes, then 413, so the client sees the answer rather than a reset connection;
- an upload (a multipart POST to an attachments route or to the subscriber's page) is spooled to
  a temporary file as it comes (1 MiB of it in memory at most) up to its own limit, and
  refused (413) the moment one of its parts grows past ATTACHMENT_MAX_BYTES, or at once when
  its declared length is beyond what the route takes: the rest is never read;
- a client that goes away before its request is complete (an aborted chunked body) is only
  noted in the log: no thread ever waited for it;
- a thread writes the answer with a socket timeout, so a client that stops reading cannot
  hold it either.

gunicorn's threaded worker already parks connections without data in its poller; this worker
uses that: `handle` reads what has arrived and returns gunicorn's "defer" sentinel until the
request is whole. The gunicorn internals it relies on are named in internals.py, whose test
holds them to the installed gunicorn.
"""

import contextlib
import errno
import itertools
import json
import re
import selectors
import socket
import struct
import tempfile
import time

from gunicorn import util
from gunicorn.http.unreader import SocketUnreader
from gunicorn.workers import gthread

from .config import ConfigError, from_environment

# A request head larger than this is refused (431): real clients send a few hundred bytes.
HEAD_LIMIT = 64 * 1024
# A client that stops reading our answer for this long loses the connection.
SEND_TIMEOUT = 10.0
_READ_SIZE = 64 * 1024
# The routes that take uploads (attachments.py, public.py): the request line of each.
UPLOAD = re.compile(
    rb"^POST (?:/api/v1/tickets/\d+/attachments|/api/v1/public/tickets/[^/?\s]+/attachments"
    rb"|/t/[^/?\s]+)(?:\?\S*)? HTTP/1\.[01]\r?$"
)
# What an upload keeps in memory before it moves to a temporary file.
UPLOAD_SPOOL = 1024 * 1024
# The headers of a multipart part, beyond its file: a generous allowance.
PART_HEADERS = 16 * 1024
_BOUNDARY = re.compile(rb"boundary=(?:\"([^\"]{1,70})\"|([^;\s]{1,70}))", re.IGNORECASE)


def envelope_answer(status: int, reason: str, message: str) -> bytes:
    """A complete HTTP answer, closing the connection, in the API's JSON envelope."""
    body = json.dumps({"success": False, "message": message}).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\n"
        "Connection: close\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("latin-1") + body


def write_error_as_envelope(sock, status_int: int, reason: str, mesg: str) -> None:
    """gunicorn's own answers (a request it cannot parse, a request line or headers over its
    limits) in the envelope rather than an HTML page."""
    message = f"{reason}: {mesg}" if mesg else f"{reason}."
    util.write_nonblock(sock, envelope_answer(status_int, reason, message))


class Refusal(Exception):
    """The worker answers the request itself (and closes the connection)."""

    def __init__(self, status: int, reason: str, message: str):
        super().__init__(message)
        self.status, self.reason, self.message = status, reason, message


class ClientGone(Exception):
    """The client closed the connection before its request was complete (`partly`: after
    sending some of it)."""

    def __init__(self, partly: bool):
        super().__init__()
        self.partly = partly


class RequestReader:
    """What has arrived of one request (or of several pipelined ones), and whether the first
    is complete: head by its blank line, body by Content-Length or the chunked framing."""

    def __init__(self, limits: "Limits"):
        self.limits = limits
        self.buffer = bytearray()
        self.started: float | None = None  # when the first byte arrived
        self.head_end: int | None = None  # index just past the head's blank line
        self.head_done_at: float | None = None
        self.framing: Framing | None = None
        self.continued = False  # 100 Continue sent
        # An upload's body (and what follows it) goes here rather than into buffer.
        self.spool: tempfile.SpooledTemporaryFile | None = None
        self.parts: PartWatch | None = None

    def feed(self, data: bytes, now: float) -> None:
        if not data:
            return
        if self.started is None:
            self.started = now
        if self.framing is not None and self.framing.discarding:
            self.framing.consume(data)
            return
        if self.spool is not None:
            self._spooled(data)
            return
        self.buffer += data
        if self.head_end is None:
            self._find_head(now)
        elif self.framing is not None:
            self.framing.consume(data)

    def _spooled(self, data: bytes) -> None:
        self.spool.write(data)
        if self.parts is not None:
            self.parts.consume(data)
        self.framing.consume(data)
        if self.framing.received > self.framing.limit:
            raise Refusal(413, "Content Too Large", "Request body too large.")

    def _upload(self, head: bytes) -> bool:
        """Whether the request is an upload: its body then goes to a spool, held to the
        upload's limits (413 at once for a declared length beyond them)."""
        line = head.split(b"\n", 1)[0]
        if not UPLOAD.match(line):
            return False
        self.framing = Framing.of(head, self.limits.upload_body)
        if self.framing.discarding:
            raise Refusal(413, "Content Too Large", "Request body too large.")
        found = None
        for header in head.split(b"\n")[1:]:
            name, colon, value = header.partition(b":")
            if colon and name.strip().lower() == b"content-type":
                found = _BOUNDARY.search(value)
        if found is not None:
            self.parts = PartWatch(found[1] or found[2], self.limits.upload_part)
        self.spool = tempfile.SpooledTemporaryFile(max_size=UPLOAD_SPOOL)  # noqa: SIM115
        return True

    def close(self) -> None:
        if self.spool is not None:
            self.spool.close()

    def _find_head(self, now: float) -> None:
        text = bytes(self.buffer).lstrip(b"\r\n")  # empty lines may precede a request line
        skipped = len(self.buffer) - len(text)
        ends = [
            (found + len(mark), mark)
            for mark in (b"\r\n\r\n", b"\n\n")
            if (found := text.find(mark)) >= 0
        ]
        if not ends:
            if len(text) > HEAD_LIMIT:
                raise Refusal(431, "Request Header Fields Too Large", "Request head too large.")
            return
        end = skipped + min(ends)[0]
        if end - skipped > HEAD_LIMIT:
            raise Refusal(431, "Request Header Fields Too Large", "Request head too large.")
        self.head_end, self.head_done_at = end, now
        head = bytes(self.buffer[skipped:end])
        body = bytes(self.buffer[end:])
        if self._upload(head):
            del self.buffer[end:]
            self._spooled(body)
            return
        self.framing = Framing.of(head, self.limits.body)
        if self.framing.discarding:
            del self.buffer[end:]
        self.framing.consume(body)

    def complete(self) -> bool:
        return self.framing is not None and self.framing.complete

    def expects_continue(self) -> bool:
        return self.framing is not None and self.framing.expect_continue

    def overdue(self) -> Refusal:
        """The 408 for a request that stopped arriving, by what is missing."""
        part = "head" if self.head_end is None else "body"
        return Refusal(408, "Request Timeout", f"The request {part} took too long to arrive.")

    def check(self, now: float) -> None:
        """413 for a body over the limit, once it is whole; 408 once the head or the body has
        taken longer than it may."""
        if self.complete() and self.framing.discarding:
            raise Refusal(413, "Content Too Large", "Request body too large.")
        if self.started is None:
            return
        if self.head_end is None and now - self.started > self.limits.header_timeout:
            raise self.overdue()
        waited = now - self.head_done_at if self.head_done_at is not None else 0
        allowed = self.limits.upload_timeout if self.spool is not None else self.limits.body_timeout
        if not self.complete() and waited > allowed:
            raise self.overdue()


class PartWatch:
    """Follows a multipart body's boundaries as it arrives: a part (a file) that grows past
    the limit is refused then, before the rest of the body is read."""

    def __init__(self, boundary: bytes, limit: int):
        self.mark = b"--" + boundary
        self.limit = limit
        self.since = 0  # bytes since the last boundary
        self.tail = b""  # the end of what came, where a boundary may begin

    def consume(self, data: bytes) -> None:
        text = self.tail + data
        found = text.rfind(self.mark)
        if found >= 0:
            self.since = len(text) - found - len(self.mark)
        else:
            self.since += len(data)
        self.tail = text[-(len(self.mark) - 1) :]
        if self.since > self.limit:
            raise Refusal(
                413, "Content Too Large", "A file is larger than the limit (ATTACHMENT_MAX_BYTES)."
            )


class Framing:
    """Where a request's body ends: none, a length, or chunks; counts what has arrived. A body
    over the limit is thrown away as it comes (`discarding`), and refused once it is whole."""

    def __init__(self, length: int | None, chunked: bool, limit: int, expect_continue: bool):
        self.remaining = length or 0  # bytes of a known length still to come
        self.chunked = chunked
        self.limit = limit
        self.expect_continue = expect_continue
        self.received = 0  # body bytes so far (chunk payloads, when chunked)
        self.discarding = length is not None and length > limit
        self.complete = not chunked and not self.remaining
        # The chunk scanner: where it stands in the chunked body.
        self._pending = b""  # bytes not yet scanned past (a chunk-size line in the making)
        self._payload_left = 0  # bytes of the current chunk's data (+2 for its CRLF) to skip
        self._in_trailers = False

    @classmethod
    def of(cls, head: bytes, limit: int) -> "Framing":
        """The framing a request head declares. Anything unusual (two lengths, a length that
        is no number, a length beside chunked) is left to gunicorn's parser, which refuses
        it: the request is then handed over as it is, head complete."""
        lengths, codings, expect = [], [], False
        for line in head.split(b"\n")[1:]:
            name, colon, value = line.partition(b":")
            if not colon:
                continue
            name = name.strip().lower()
            if name == b"content-length":
                lengths.append(value.strip())
            elif name == b"transfer-encoding":
                codings.append(value.strip().lower())
            elif name == b"expect" and value.strip().lower() == b"100-continue":
                expect = True
        if codings:
            if lengths or codings != [b"chunked"]:
                return cls(None, False, limit, False)  # gunicorn answers 400 or 501
            return cls(None, True, limit, expect)
        if len(lengths) == 1 and lengths[0].isdigit() and len(lengths[0]) <= 18:
            return cls(int(lengths[0]), False, limit, expect)
        return cls(None, False, limit, False)  # no body, or gunicorn refuses the length

    def consume(self, data: bytes) -> None:
        if self.complete or not data:
            return
        if not self.chunked:
            taken = min(len(data), self.remaining)
            self.remaining -= taken
            self.received += taken
            self.complete = self.remaining == 0
            return
        self._scan(data)
        if self.received > self.limit:
            self.discarding = True

    def _scan(self, data: bytes) -> None:
        """Follow the chunked framing through newly arrived bytes."""
        data = self._pending + data
        self._pending = b""
        position = 0
        while position < len(data) and not self.complete:
            if self._payload_left:
                step = min(self._payload_left, len(data) - position)
                self._payload_left -= step
                position += step
                continue
            line_end = data.find(b"\n", position)
            if line_end < 0:
                self._pending = data[position:][-1024:]  # a size line is short: keep its end
                return
            line = data[position:line_end].strip()
            position = line_end + 1
            if self._in_trailers:
                self.complete = line == b""
                continue
            size_text = line.split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                self.complete = True  # malformed: gunicorn's parser refuses it (400)
                return
            if size == 0:
                self._in_trailers = True
                continue
            self.received += size
            self._payload_left = size + 2  # the data and its CRLF


class Limits:
    """How long a request may take to arrive, and how large its body may be."""

    def __init__(self, environ=None):
        settings = from_environment(environ)
        self.header_timeout = settings["REQUEST_HEADER_TIMEOUT"]
        self.body_timeout = settings["REQUEST_BODY_TIMEOUT"]
        self.body = settings["MAX_CONTENT_LENGTH"]
        # Uploads: a file and its part's headers, at most 20 of them, a little for fields
        # (attachments.receive holds the body to the same), and time for a phone to send it.
        self.upload_part = settings["ATTACHMENT_MAX_BYTES"] + PART_HEADERS
        self.upload_body = 20 * self.upload_part + 256 * 1024
        self.upload_timeout = settings["UPLOAD_BODY_TIMEOUT"]


def _has_unread_bytes(sock) -> bool:
    """Whether the client has sent something not read yet (without reading it)."""
    try:
        return bool(sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT))
    except OSError:  # nothing yet (EAGAIN), or the connection is gone
        return False


class BufferingWorker(gthread.ThreadWorker):
    """gunicorn's gthread worker that hands a thread only whole requests (see the module)."""

    def init_process(self) -> None:
        try:
            self.limits = Limits()
        except ConfigError as err:  # on_starting refused it already; never boot half-set
            raise SystemExit(f"tickets-service: configuration error: {err}") from None
        super().init_process()

    busy = 0  # connections handed to the thread pool and not yet finished (main loop only)
    _completions = None  # a poller for finished threads only (see wait_for_and_dispatch_events)

    def enqueue_req(self, conn) -> None:
        self.busy += 1
        super().enqueue_req(conn)

    def finish_request(self, conn, fs) -> None:
        self.busy -= 1
        super().finish_request(conn, fs)

    def wait_for_and_dispatch_events(self, timeout: float) -> None:
        """While every thread is busy, wait only for one to finish. Readable connections could
        only be queued behind the busy threads anyway, and each wake-up would take the GIL
        from the thread serving a request (seen: 7 % fewer list pages a second). The poller
        reports them, still readable, once a thread is free."""
        if self.busy < self.cfg.threads or not self.alive:
            super().wait_for_and_dispatch_events(timeout)
            return
        if self._completions is None:
            self._completions = selectors.DefaultSelector()
            self._completions.register(
                self.method_queue.fileno(), selectors.EVENT_READ, self.method_queue.run_callbacks
            )
        try:
            for key, _ in self._completions.select(timeout):
                key.data(key.fileobj)
        except InterruptedError:
            pass

    def murder_keepalived(self, force: bool = False) -> None:
        """Close the kept-alive connections that stayed silent for gunicorn's keepalive (all of
        them when forced), sparing those whose client has spoken meanwhile."""
        if not force:
            self._spare_the_spoken(self.keepalived_conns)
        super().murder_keepalived(force)

    def murder_pending(self) -> None:
        """Close the connections that stayed silent for gunicorn's keepalive, sparing those
        whose client has spoken meanwhile; one that had begun a request is told so (408)
        first."""
        self._spare_the_spoken(self.pending_conns)
        now = time.monotonic()
        for conn in self.pending_conns:  # in the order of their timeouts
            if conn.timeout > now:
                break
            reader = getattr(conn, "reader", None)
            if reader is not None and reader.started is not None:
                refusal = reader.overdue()
                answer = envelope_answer(refusal.status, refusal.reason, refusal.message)
                with contextlib.suppress(OSError):
                    util.write_nonblock(conn.sock, answer)
        super().murder_pending()

    def _spare_the_spoken(self, conns) -> None:
        """Give an expired connection with unread bytes another keepalive: its client sent
        them while every thread was busy (the worker does not read then, see
        wait_for_and_dispatch_events), and closing it now would throw its request away, the
        client seeing a reset. The poller hands it to the next free thread, whose reader still
        holds a slow client to its own deadlines."""
        now = time.monotonic()
        expired = list(itertools.takewhile(lambda conn: conn.timeout <= now, conns))
        for conn in expired:
            if _has_unread_bytes(conn.sock):
                conns.remove(conn)
                conn.timeout = now + self.cfg.keepalive
                conns.append(conn)

    def set_accept_enabled(self, enabled: bool) -> None:
        """Listen for new connections only while a thread is free (the run loop asks again on
        every turn, so listening resumes as soon as one is)."""
        super().set_accept_enabled(enabled and self.busy < self.cfg.threads)

    def accept(self, listener) -> None:
        """As gunicorn accepts, with connections that close without lingering on the main
        loop (see BufferedConnection.close). A connection that arrives while every thread is
        busy is left in the listen queue for a worker with a free thread: kept-alive
        connections stay with the worker that accepted them, and one that took them all while
        another sat idle served half of what the two could (seen under wrk)."""
        if self.busy >= self.cfg.threads:
            self.set_accept_enabled(False)
            return
        try:
            client, address = listener.accept()
        except OSError as err:
            if err.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        client.setblocking(True)
        conn = BufferedConnection(self.cfg, client, address, listener.getsockname())
        self.enqueue_req(conn)

    def handle(self, conn):
        """Runs in a thread whenever a connection has something to read: take it in; serve the
        request once it is whole; until then, back to the poller."""
        if self.cfg.is_ssl or conn.is_http2:
            return super().handle(conn)  # TLS and HTTP/2 are not read by this worker
        reader = conn.reader or RequestReader(self.limits)
        conn.reader = reader
        try:
            self._take_in(conn, reader)
        except ClientGone as gone:
            reader.close()
            if gone.partly:
                self.log.info("Client closed the connection before its request was complete.")
            return False
        except Refusal as refusal:
            reader.close()
            self.log.info("Refused a request: %s %s", refusal.status, refusal.message)
            answer = envelope_answer(refusal.status, refusal.reason, refusal.message)
            util.write_nonblock(conn.sock, answer)
            return False
        if not reader.complete():
            return gthread._DEFER
        conn.reader = None
        conn.init()
        if reader.spool is None:
            conn.parser.unreader.unread(bytes(reader.buffer))
            return super().handle(conn)
        # An upload: its body (and anything after it) from the spool, then the connection
        # closes, so no later request reads after a spool that is gone.
        reader.spool.seek(0)
        conn.upload = True
        conn.parser.unreader = SpooledUnreader(conn.sock, reader.spool)
        conn.parser.unreader.unread(bytes(reader.buffer))
        try:
            super().handle(conn)
        finally:
            reader.close()
        return False

    def _take_in(self, conn, reader: RequestReader) -> None:
        """Read what the connection has, without waiting for more."""
        if conn.initialized:  # a kept-alive connection: what the parser read ahead first
            reader.feed(conn.parser.unreader.take_buffered(), time.monotonic())
        conn.sock.setblocking(False)
        try:
            while not reader.complete():
                try:
                    data = conn.sock.recv(_READ_SIZE)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:
                    raise ClientGone(reader.started is not None) from None
                if not data:
                    raise ClientGone(reader.started is not None)
                reader.feed(data, time.monotonic())
            reader.check(time.monotonic())
            if reader.expects_continue() and not reader.complete() and not reader.continued:
                reader.continued = True
                conn.sock.send(b"HTTP/1.1 100 Continue\r\n\r\n")
        except OSError:
            raise ClientGone(True) from None
        finally:
            conn.sock.setblocking(True)

    def handle_request(self, req, conn):
        """Serve a whole request; a client that stops reading the answer times out. An
        upload's answer says `Connection: close`, and the connection closes after it."""
        if getattr(conn, "upload", False):
            req.must_close = True
        try:
            return super().handle_request(req, conn)
        except BlockingIOError:  # SO_SNDTIMEO ran out (see BufferedConnection)
            self.log.info("Client stopped reading its answer; connection closed.")
            return False


class SpooledUnreader(SocketUnreader):
    """gunicorn's socket unreader, reading an upload's spool before the socket."""

    def __init__(self, sock, spool):
        super().__init__(sock)
        self.spool = spool

    def chunk(self, size_hint=None):
        if not self.spool.closed:
            # One read-sized piece at a time, whatever the parser may take: asked for the
            # whole rest of a body, gunicorn would hold all of it in memory.
            data = self.spool.read(_READ_SIZE)
            if data:
                return data
        return super().chunk(size_hint)


class BufferedConnection(gthread.TConn):
    """A connection with the request bytes read so far."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.reader: RequestReader | None = None
        # A blocking send gives up after SEND_TIMEOUT: the kernel's timer, so writing an
        # answer costs no poll() per chunk, as a socket timeout set in Python would.
        seconds, fraction = divmod(SEND_TIMEOUT, 1)
        timeval = struct.pack("ll", int(seconds), int(fraction * 1_000_000))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval)

    def close(self, graceful: bool = False) -> None:
        """Close without lingering: gunicorn's graceful close waits up to two seconds for the
        client to hang up, on the main loop, where it would stall every other connection.
        Every request was read in full before it was answered, so nothing unread remains to
        make the kernel reset the connection; what the client sent since is dropped."""
        if graceful:
            try:
                self.sock.shutdown(socket.SHUT_WR)
                self.sock.setblocking(False)
                while self.sock.recv(_READ_SIZE):
                    pass
            except OSError:
                pass
        util.close(self.sock)
