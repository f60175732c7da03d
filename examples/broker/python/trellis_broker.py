"""Python client for the Trellis broker (standard library only).

Keeps the original course project's API so existing producers and consumers work unchanged::

    from trellis_broker import JSONQueue, XMLQueue, PickleQueue, MiddlewareType

    producer = PickleQueue("/weather/temperature", _type=MiddlewareType.PRODUCER)
    producer.push({"celsius": 21.5})

    consumer = JSONQueue("/weather", _type=MiddlewareType.CONSUMER)
    topic, value = consumer.pull()          # blocks; the last value comes first
    consumer.list_topics(print)             # calls back with the topics holding a value
    consumer.cancel()                       # nothing more arrives from "/weather"

It speaks the Trellis wire protocol v1 (examples/broker/PROTOCOL.md): length-prefixed frames,
a HELLO announcing the codec (0 JSON, 1 XML, 2 Pickle) and the role. The broker address comes
from the ``host``/``port`` arguments, else $TRELLIS_BROKER_HOST / $TRELLIS_BROKER_PORT, else
localhost:7000. On a broker with access control, pass ``username``/``password`` (or set
$TRELLIS_BROKER_USER / $TRELLIS_BROKER_PASSWORD); on a TLS broker pass ``tls=True`` and
``ca="ca.pem"`` (or set $TRELLIS_BROKER_TLS=1 / $TRELLIS_BROKER_CA). Every method may be called from any thread
(e.g. ``list_topics()`` while another thread blocks in ``pull()``). Values follow the Trellis value model: None, bool, int (any size), float, str,
bytes, list, dict with str keys (tuples are sent as lists).
"""
from __future__ import annotations

import base64
import enum
import io
import json
import math
import os
import pickle
import re
import socket
import ssl
import struct
import threading
import xml.etree.ElementTree as ET
from collections import deque
from typing import Any, Callable, Deque, List, Optional, Tuple

__all__ = [
    "MiddlewareType", "CONSUMER", "PRODUCER", "Queue", "JSONQueue", "XMLQueue", "PickleQueue",
    "BrokerError", "PROTOCOL_VERSION", "DEFAULT_PORT",
]

PROTOCOL_VERSION = 1
DEFAULT_PORT = 7000
MAX_FRAME_BYTES = 64 * 1024 * 1024

# frame types (PROTOCOL.md)
HELLO, WELCOME, PING, PONG = 0x01, 0x02, 0x03, 0x04
PUBLISH, PUBACK = 0x10, 0x11
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK = 0x20, 0x21, 0x22, 0x23
LIST_TOPICS, TOPICS, STATS, STATS_REPLY = 0x30, 0x31, 0x32, 0x33
MESSAGE, ERROR = 0x40, 0x7F
# acknowledged delivery and persistent sessions (PROTOCOL.md, "Acknowledged delivery")
SESSION, SESSION_ACK, SUBSCRIBE_ACKED, UNSUBSCRIBE_ACKED = 0x50, 0x51, 0x52, 0x53
DELIVERY, ACK, OVERFLOW = 0x54, 0x55, 0x56
_SUB_ID = 1  # the one acknowledged subscription of a queue

ERROR_NAMES = {
    1: "MALFORMED", 2: "FRAME_TOO_LARGE", 3: "OUT_OF_ORDER", 4: "UNSUPPORTED_VERSION",
    5: "UNKNOWN_CODEC", 6: "BAD_TOPIC", 7: "BAD_PAYLOAD", 8: "SLOW_CONSUMER", 9: "NOT_ALLOWED",
    10: "LIMIT", 11: "SHUTDOWN", 12: "INTERNAL", 13: "IDLE_TIMEOUT", 14: "AUTH_FAILED",
}


class MiddlewareType(enum.Enum):
    """What a queue does: consume (subscribe and pull) or produce (push)."""
    CONSUMER = 1
    PRODUCER = 2


CONSUMER = MiddlewareType.CONSUMER
PRODUCER = MiddlewareType.PRODUCER


class BrokerError(Exception):
    """The broker refused something (it closes the connection after an ERROR frame)."""

    def __init__(self, code: int, message: str):
        self.code = code
        self.name = ERROR_NAMES.get(code, "UNKNOWN_%d" % code)
        super().__init__("%s: %s" % (self.name, message))


_NOTHING = object()


def _string(data: bytes) -> bytes:
    return struct.pack(">H", len(data)) + data


class Queue:
    """A connection to the broker bound to one topic; subclasses choose the codec."""

    codec_id: int = -1

    def __init__(self, topic: str, _type: MiddlewareType = MiddlewareType.CONSUMER,
                 host: Optional[str] = None, port: Optional[int] = None,
                 timeout: Optional[float] = 10.0,
                 username: Optional[str] = None, password: Optional[str] = None,
                 tls: Optional[bool] = None, ca: Optional[str] = None,
                 acked: bool = False, client_id: Optional[str] = None, clean: bool = False):
        """``acked=True`` (consumers): at-least-once delivery: each message is acknowledged when the
        next ``pull()`` is called, and one that was not is delivered again (``self.last_duplicate``).
        ``client_id`` names a persistent session: the broker keeps the subscription and queues
        messages while no queue with this id is connected, and a new queue with the id resumes it
        (``clean=True`` discards what was kept). """
        if not isinstance(topic, str) or not topic:
            raise ValueError("a topic is a non-empty string such as 'qwerty' or '/weather/temperature', got %r" % (topic,))
        self.topic = topic
        self.type = _type
        self._host = host or os.environ.get("TRELLIS_BROKER_HOST", "localhost")
        self._port = int(port or os.environ.get("TRELLIS_BROKER_PORT", DEFAULT_PORT))
        self._buffer = bytearray()
        self._messages: Deque[Any] = deque()
        self._replies: dict = {}
        self._next_id = 1
        self._subscribed = False
        self._closed = False
        self._acked = bool(acked or client_id)
        self._to_ack = 0  # the number of the message pull() handed out last (acked at the next pull)
        self.last_number = 0
        self.last_duplicate = False
        self.dropped = 0  # messages the broker dropped because the session's queue was full
        # Thread safety: one thread at a time reads the socket (the "reader"); the others wait on
        # the condition for their reply or message, which the reader files for them. Sends are
        # serialized by their own lock, so list_topics() in one thread while pull() blocks in
        # another works as the original API invites.
        self._cond = threading.Condition(threading.Lock())
        self._send_lock = threading.Lock()
        self._reading = False
        self._error: Optional[BaseException] = None
        self._sock = socket.create_connection((self._host, self._port), timeout=timeout)
        if tls is None:
            tls = os.environ.get("TRELLIS_BROKER_TLS", "") not in ("", "0")
        ca = ca or os.environ.get("TRELLIS_BROKER_CA")
        if tls or ca:
            context = ssl.create_default_context(cafile=ca)  # verifies the broker's certificate and name
            self._sock = context.wrap_socket(self._sock, server_hostname=self._host)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        role = 2 if _type == MiddlewareType.CONSUMER else 1
        hello = struct.pack(">BBBB", HELLO, PROTOCOL_VERSION, self.codec_id, role)
        username = username if username is not None else os.environ.get("TRELLIS_BROKER_USER")
        if username is not None:
            if password is None:
                password = os.environ.get("TRELLIS_BROKER_PASSWORD", "")
            hello += _string(username.encode("utf-8")) + _string(password.encode("utf-8"))
        self._send(hello)
        self._wait_for(WELCOME, None)
        self._sock.settimeout(None)  # pull() blocks until a message arrives
        if _type == MiddlewareType.CONSUMER and self._acked:
            self._subscribed = True  # deliveries that follow SESSION_ACK are kept
            kept = []
            if client_id:
                rid = self._id()
                self._send(struct.pack(">BIB", SESSION, rid, 1 if clean else 0) + _string(client_id.encode("utf-8")))
                kept = self._wait_for(SESSION_ACK, rid)
            if (_SUB_ID, topic) not in kept:
                rid = self._id()
                self._send(struct.pack(">BII", SUBSCRIBE_ACKED, rid, _SUB_ID) + _string(topic.encode("utf-8")))
                self._wait_for(SUBACK, rid)
        elif _type == MiddlewareType.CONSUMER:
            rid = self._id()
            self._send(struct.pack(">BI", SUBSCRIBE, rid) + _string(topic.encode("utf-8")))
            self._wait_for(SUBACK, rid)
            self._subscribed = True

    # -- the original API ------------------------------------------------------------------

    def push(self, value: Any, ack: bool = False) -> None:
        """Publishes ``value`` on this queue's topic; with ``ack=True`` waits for the broker's receipt."""
        payload = self._encode(value)
        topic = self.topic.encode("utf-8")
        rid = self._id() if ack else 0
        self._send(struct.pack(">BBIH", PUBLISH, 1 if ack else 0, rid, len(topic)) + topic + payload)
        if ack:
            self._wait_for(PUBACK, rid)

    def pull(self) -> Tuple[str, Any]:
        """Blocks until a message arrives on the topic (or under it); returns ``(topic, value)``."""
        if self.type != MiddlewareType.CONSUMER:
            raise RuntimeError("pull() needs a CONSUMER queue; this one is a PRODUCER")
        if not self._acked:
            return self._wait(lambda: self._messages.popleft() if self._messages else _NOTHING)
        if self._to_ack:
            # asking for the next message means the previous one was handled
            self._send(struct.pack(">BII", ACK, _SUB_ID, self._to_ack))
            self._to_ack = 0
        topic, value, number, duplicate = self._wait(lambda: self._messages.popleft() if self._messages else _NOTHING)
        self._to_ack = number
        self.last_number, self.last_duplicate = number, duplicate
        return topic, value

    def list_topics(self, callback: Callable[[List[str]], Any]) -> Any:
        """Asks the broker for the topics holding a value and calls ``callback(topics)``."""
        rid = self._id()
        self._send(struct.pack(">BI", LIST_TOPICS, rid))
        topics = self._wait_for(TOPICS, rid)
        return callback(topics)

    def cancel(self) -> None:
        """Cancels the subscription: no message from this topic is returned afterwards."""
        if not self._subscribed:
            return
        rid = self._id()
        if self._acked:
            self._send(struct.pack(">BII", UNSUBSCRIBE_ACKED, rid, _SUB_ID))
        else:
            self._send(struct.pack(">BI", UNSUBSCRIBE, rid) + _string(self.topic.encode("utf-8")))
        with self._cond:
            self._subscribed = False  # what arrives from now on is dropped, not queued
        self._wait_for(UNSUBACK, rid)
        with self._cond:
            self._messages.clear()

    # -- extras ------------------------------------------------------------------------------

    def stats(self) -> dict:
        """The broker's statistics (topics, subscribers, messages in/out...)."""
        rid = self._id()
        self._send(struct.pack(">BI", STATS, rid))
        return self._wait_for(STATS_REPLY, rid)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            try:
                self._sock.close()
            except OSError:
                pass

    def __enter__(self) -> "Queue":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    # -- codec -------------------------------------------------------------------------------

    def _encode(self, value: Any) -> bytes:
        raise NotImplementedError

    def _decode(self, data: bytes) -> Any:
        raise NotImplementedError

    # -- wire --------------------------------------------------------------------------------

    def _id(self) -> int:
        with self._send_lock:
            rid = self._next_id
            self._next_id = 1 if rid >= 0xFFFFFFFF else rid + 1
            return rid

    def _send(self, body: bytes) -> None:
        if self._closed:
            raise self._error or BrokerError(11, "the connection is closed")
        with self._send_lock:
            self._sock.sendall(struct.pack(">I", len(body)) + body)

    def _wait_for(self, frame_type: int, rid: Optional[int]) -> Any:
        key = (frame_type, rid)
        return self._wait(lambda: self._replies.pop(key) if key in self._replies else _NOTHING)

    def _wait(self, take: Callable[[], Any]) -> Any:
        """Returns what ``take()`` finds (under the lock), reading frames until it finds something."""
        with self._cond:
            while True:
                got = take()
                if got is not _NOTHING:
                    return got
                if self._error is not None:
                    raise self._error
                if self._reading:
                    self._cond.wait()  # another thread reads; it files our frame and wakes us
                    continue
                self._reading = True
                try:
                    self._cond.release()
                    try:
                        body = self._read_frame()
                    finally:
                        self._cond.acquire()
                    self._handle(body)
                except BaseException as err:  # noqa: B036 - every waiter must learn the connection died
                    if isinstance(err, (BrokerError, OSError)) and self._error is None:
                        self._error = err
                    raise
                finally:
                    self._reading = False
                    self._cond.notify_all()

    def _read_frame(self) -> bytes:
        """One frame body from the socket (only the reading thread calls this)."""
        while True:
            if len(self._buffer) >= 4:
                (size,) = struct.unpack_from(">I", self._buffer, 0)
                if size > MAX_FRAME_BYTES or size == 0:
                    self.close()
                    raise BrokerError(2, "the broker sent a frame of %d bytes" % size)
                if len(self._buffer) >= 4 + size:
                    body = bytes(self._buffer[4:4 + size])
                    del self._buffer[:4 + size]
                    return body
            if self._closed:
                raise BrokerError(11, "the connection is closed")
            chunk = self._sock.recv(65536)
            if not chunk:
                self.close()
                raise BrokerError(11, "the broker closed the connection")
            self._buffer += chunk

    def _handle(self, body: bytes) -> None:
        kind = body[0]
        if kind == MESSAGE:
            (tlen,) = struct.unpack_from(">H", body, 2)
            topic = body[4:4 + tlen].decode("utf-8")
            if self._subscribed:
                self._messages.append((topic, self._decode(body[4 + tlen:])))
        elif kind == DELIVERY:
            flags, _sub, number, tlen = struct.unpack_from(">BIIH", body, 1)
            topic = body[12:12 + tlen].decode("utf-8")
            if self._subscribed:
                self._messages.append((topic, self._decode(body[12 + tlen:]), number, bool(flags & 2)))
        elif kind == SESSION_ACK:
            rid, _resumed, count = struct.unpack_from(">IBI", body, 1)
            off, kept = 10, []
            for _ in range(count):
                sid, _flags, n = struct.unpack_from(">IBH", body, off)
                kept.append((sid, body[off + 7:off + 7 + n].decode("utf-8")))
                off += 7 + n
            self._replies[(SESSION_ACK, rid)] = kept
        elif kind == OVERFLOW:
            _sub, dropped = struct.unpack_from(">II", body, 1)
            self.dropped += dropped
        elif kind == PING:
            self._send(struct.pack(">B", PONG))  # the broker checks that idle clients are alive
        elif kind == PONG:
            pass
        elif kind == WELCOME:
            self._replies[(WELCOME, None)] = struct.unpack_from(">I", body, 2)[0]
        elif kind in (PUBACK, UNSUBACK):
            self._replies[(kind, struct.unpack_from(">I", body, 1)[0])] = None
        elif kind == SUBACK:
            rid, retained = struct.unpack_from(">II", body, 1)
            self._replies[(SUBACK, rid)] = retained
        elif kind == TOPICS:
            rid, count = struct.unpack_from(">II", body, 1)
            off, topics = 9, []
            for _ in range(count):
                (n,) = struct.unpack_from(">H", body, off)
                topics.append(body[off + 2:off + 2 + n].decode("utf-8"))
                off += 2 + n
            self._replies[(TOPICS, rid)] = topics
        elif kind == STATS_REPLY:
            (rid,) = struct.unpack_from(">I", body, 1)
            self._replies[(STATS_REPLY, rid)] = json.loads(body[5:].decode("utf-8"))
        elif kind == ERROR:
            code, _rid = struct.unpack_from(">HI", body, 1)
            self.close()
            raise BrokerError(code, body[7:].decode("utf-8", "replace"))
        else:
            self.close()
            raise BrokerError(1, "unexpected frame type 0x%02x from the broker" % kind)


# ------------------------------------------------------------------------------------ JSON

def _json_default(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"$bytes": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, tuple):
        return list(value)
    raise TypeError("%s is outside the Trellis value model" % type(value).__name__)


def _json_hook(obj: dict) -> Any:
    if len(obj) == 1 and "$bytes" in obj and isinstance(obj["$bytes"], str):
        return base64.b64decode(obj["$bytes"], validate=True)
    return obj


class JSONQueue(Queue):
    """A queue speaking JSON (wire id 0); bytes travel as ``{"$bytes": "<base64>"}``."""
    codec_id = 0

    def _encode(self, value: Any) -> bytes:
        return json.dumps(value, default=_json_default, allow_nan=False, separators=(",", ":")).encode("utf-8")

    def _decode(self, data: bytes) -> Any:
        return json.loads(data.decode("utf-8"), object_hook=_json_hook)


# ---------------------------------------------------------------------------------- Pickle

class _SafeUnpickler(pickle.Unpickler):
    """Refuses every global: only plain data (the Trellis value model) can be loaded."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError("refusing to load global %s.%s from the broker" % (module, name))

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("refusing a persistent id from the broker")


class PickleQueue(Queue):
    """A queue speaking Python pickle (wire id 2); loading refuses anything that imports or calls."""
    codec_id = 2

    def _encode(self, value: Any) -> bytes:
        return pickle.dumps(value, protocol=4)

    def _decode(self, data: bytes) -> Any:
        return _SafeUnpickler(io.BytesIO(data)).load()


# ------------------------------------------------------------------------------------- XML

class XMLQueue(Queue):
    """A queue speaking the typed XML form of the xml plugin (wire id 1)."""
    codec_id = 1

    def _encode(self, value: Any) -> bytes:
        return xml_encode(value)

    def _decode(self, data: bytes) -> Any:
        return xml_decode(data)


_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


def _xml_text(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#13;")


def _xml_attr(s: str) -> str:
    return (_xml_text(s).replace('"', "&quot;").replace("\t", "&#9;").replace("\n", "&#10;"))


def _xml_write(v: Any, out: List[str], depth: int) -> None:
    if depth > 512:
        raise ValueError("nesting deeper than 512")
    if v is None:
        out.append("<null/>")
    elif isinstance(v, bool):
        out.append("<bool>true</bool>" if v else "<bool>false</bool>")
    elif isinstance(v, int):
        out.append("<int>%d</int>" % v)
    elif isinstance(v, float):
        if math.isnan(v):
            text = "NaN"
        elif math.isinf(v):
            text = "Infinity" if v > 0 else "-Infinity"
        else:
            text = repr(v)
        out.append("<float>%s</float>" % text)
    elif isinstance(v, str):
        if v == "":
            out.append("<str/>")
        elif _XML_ILLEGAL.search(v):
            out.append('<str enc="json">%s</str>' % _xml_text(json.dumps(v)))
        else:
            out.append("<str>%s</str>" % _xml_text(v))
    elif isinstance(v, (bytes, bytearray, memoryview)):
        data = bytes(v)
        out.append("<bytes>%s</bytes>" % base64.b64encode(data).decode("ascii") if data else "<bytes/>")
    elif isinstance(v, (list, tuple)):
        if not v:
            out.append("<list/>")
            return
        out.append("<list>")
        for item in v:
            _xml_write(item, out, depth + 1)
        out.append("</list>")
    elif isinstance(v, dict):
        if not v:
            out.append("<dict/>")
            return
        out.append("<dict>")
        for key, item in v.items():
            if not isinstance(key, str) or _XML_ILLEGAL.search(key):
                raise TypeError("dict keys must be strings XML can carry, got %r" % (key,))
            out.append('<item key="%s">' % _xml_attr(key))
            _xml_write(item, out, depth + 1)
            out.append("</item>")
        out.append("</dict>")
    else:
        raise TypeError("%s is outside the Trellis value model" % type(v).__name__)


def xml_encode(value: Any) -> bytes:
    """The xml plugin's typed form: <null/> <bool> <int> <float> <str> <bytes> <list> <dict><item key>."""
    out: List[str] = []
    _xml_write(value, out, 0)
    return "".join(out).encode("utf-8")


def _xml_read(el: "ET.Element", depth: int) -> Any:
    if depth > 512:
        raise ValueError("nesting deeper than 512")
    tag, text = el.tag, el.text or ""
    if tag == "null":
        return None
    if tag == "bool":
        t = text.strip()
        if t not in ("true", "false"):
            raise ValueError("malformed <bool>: %r" % t)
        return t == "true"
    if tag == "int":
        return int(text.strip())
    if tag == "float":
        return float(text.strip())
    if tag == "str":
        if el.get("enc") == "json":
            v = json.loads(text)
            if not isinstance(v, str):
                raise ValueError('<str enc="json"> does not hold a JSON string')
            return v
        return text
    if tag == "bytes":
        return base64.b64decode("".join(text.split()), validate=True)
    if tag == "list":
        return [_xml_read(child, depth + 1) for child in el]
    if tag == "dict":
        out = {}
        for item in el:
            if item.tag != "item" or "key" not in item.attrib or len(item) != 1:
                raise ValueError("a <dict> holds only <item key=...> elements with one value each")
            out[item.get("key")] = _xml_read(item[0], depth + 1)
        return out
    raise ValueError("unknown element <%s>" % tag)


def xml_decode(data: bytes) -> Any:
    """Reads the typed form back; DTDs and entity declarations are refused before parsing."""
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise ValueError("refusing an XML document with a DTD")
    return _xml_read(ET.fromstring(data), 0)
