"""The fast paths of aiotlp's HTTP/2 client (:mod:`aiotlp.transport._h2connection`): the frames of a common unary
call framed and parsed here, with h2's own state-changing methods called for each, in h2's order.

h2 keeps the protocol state (stream and connection state machines, flow-control windows, HPACK tables), but its
generic machinery for a frame (a frame object with its flag set, a ``repr`` for a trace log that is not kept, the
dispatch, header validation that is turned off) cost the bridge thread about 1 ms of CPU per 250 KB export.
:class:`FastFrames` does the same for the request HEADERS (:meth:`~FastFrames.send_headers`), the state changes
of the body's last DATA frame (:meth:`~FastFrames.end_stream`), and the reply's HEADERS, DATA, trailers and
WINDOW_UPDATEs (:meth:`~FastFrames.receive`); anything else goes through h2. Only with the h2 internals it drives
(:data:`AVAILABLE`, checked once at import). ``tests/transport/test_h2fastpath.py`` checks both ways against
each other byte for byte.
"""

from __future__ import annotations

from typing import Any, Final

from h2.config import H2Configuration
from h2.connection import ConnectionInputs, ConnectionState, H2Connection
from h2.events import WindowUpdated
from h2.exceptions import ProtocolError, TooManyStreamsError
from h2.stream import StreamState
from h2.utilities import guard_increment_window

__all__ = ["AVAILABLE", "TESTED_H2", "FastFrames", "data_frame_head"]

# where a stream takes a WINDOW_UPDATE (in h2's own words: its stream state machine's)
_WINDOW_STATES = frozenset({StreamState.OPEN, StreamState.HALF_CLOSED_LOCAL, StreamState.HALF_CLOSED_REMOTE})

# Frame types and flags the receive fast path reads (RFC 9113 section 6).
_DATA, _HEADERS, _WINDOW_UPDATE = 0x0, 0x1, 0x8
_END_STREAM, _END_HEADERS, _PADDED, _PRIORITY = 0x1, 0x4, 0x8, 0x20
_HPACK_MEMO_SIZE: Final = 32  # distinct header blocks remembered (a collector sends two or three kinds)


TESTED_H2: Final = ((4, 4), (4, 5))
"""The h2 releases (from, up to but not including) whose internals :class:`FastFrames` was checked against
(``tests/transport/test_h2fastpath.py``); with any other, every frame goes through h2."""


def _h2_has_fast_path_internals() -> bool:
    """Whether the installed h2 is one of :data:`TESTED_H2` and has the internals :class:`FastFrames` drives:
    otherwise every frame goes through h2, as before."""
    try:
        import h2

        release = tuple(int(part) for part in h2.__version__.split(".")[:2])
        if not TESTED_H2[0] <= release < TESTED_H2[1]:
            return False
        from h2.connection import AllowedStreamIDs, _decode_headers  # noqa: F401
        from h2.stream import H2Stream, StreamInputs  # noqa: F401
        from h2.utilities import authority_from_headers, extract_method_header  # noqa: F401

        WindowUpdated(stream_id=0, delta=1)
        probe = H2Connection(config=H2Configuration(client_side=True))
        buffer = probe.incoming_buffer
        return (
            isinstance(getattr(buffer, "_data", None), bytearray)
            and isinstance(getattr(buffer, "_headers_buffer", None), list)
            and hasattr(probe, "_inbound_flow_control_window_manager")
            and callable(getattr(probe, "_prepare_for_sending", None))
            and callable(getattr(probe, "_terminate_connection", None))
            and callable(getattr(probe, "_begin_new_stream", None))
            and isinstance(getattr(probe, "_data_to_send", None), bytearray)
            and all(callable(getattr(H2Stream, name, None)) for name in ("receive_headers", "receive_data"))
            and callable(getattr(H2Stream, "receive_window_update", None))
        )
    except Exception:  # pragma: no cover - another h2
        return False


AVAILABLE: Final = _h2_has_fast_path_internals()
"""Whether the installed h2 has what :class:`FastFrames` drives (else every frame goes through h2)."""
if AVAILABLE:
    from h2.connection import AllowedStreamIDs
    from h2.connection import _decode_headers as _h2_decode_headers
    from h2.stream import StreamInputs
    from h2.utilities import authority_from_headers, extract_method_header


class FastFrames:
    """The fast paths over one connection's ``H2Connection`` (see the module); use only when :data:`AVAILABLE`."""

    def __init__(self, h2: H2Connection) -> None:
        self._h2 = h2
        # HPACK header block -> its headers, all decoded from the same decoder table (see _decode_block).
        self._hpack_memo: dict[bytes, Any] = {}

    def receive(self, data: bytes) -> list[Any]:
        """``H2Connection.receive_data(data)``: the same events and the same state changes in h2, at a fraction of
        its cost for the frames of a common reply.

        A unary reply is a few small frames (HEADERS, DATA, trailers, and the server's WINDOW_UPDATEs), and h2
        spends most of the bridge thread's HTTP/2 time on them in its generic machinery: a frame object per frame
        with its flag set, a ``repr`` of each for a trace log that is not kept, the dispatch, header validation
        that is turned off. :meth:`_take` reads the frame headers itself and, for those frame kinds in
        the states a reply has, calls what ``receive_data`` would have called: the connection and stream state
        machines, the flow-control window managers, the content-length tracking, the HPACK decoder. At the first
        frame it does not take (another kind, flags such as PADDED, PRIORITY or a HEADERS without END_HEADERS, a
        stream in another state, an incomplete frame), the rest of the read goes to ``receive_data``; so does
        every read while h2 holds buffered bytes. A ``ProtocolError`` ends the connection as h2 would (GOAWAY).
        """
        h2c = self._h2
        buffer = h2c.incoming_buffer
        if buffer._data or buffer._headers_buffer or h2c.state_machine.state is not ConnectionState.CLIENT_OPEN:
            self._hpack_memo.clear()  # h2 may change the HPACK table
            return h2c.receive_data(data)
        events: list[Any] = []
        try:
            taken = self._take(data, events)
        except ProtocolError as exc:
            h2c._terminate_connection(exc.error_code)
            raise
        if taken < len(data):
            self._hpack_memo.clear()
            events += h2c.receive_data(data[taken:])
        return events

    def _take(self, data: bytes, events: list[Any]) -> int:
        """Take the complete frames at the start of ``data`` that a reply consists of (see :meth:`receive`),
        appending their events to ``events``; return how many bytes were taken."""
        h2c = self._h2
        streams = h2c.streams
        connection_input = h2c.state_machine.process_input
        limit = h2c.max_inbound_frame_size
        size = len(data)
        position = 0
        while size - position >= 9:
            length = int.from_bytes(data[position : position + 3], "big")
            start = position + 9
            end = start + length
            if end > size or length > limit:
                break
            kind = data[position + 3]
            flags = data[position + 4]
            stream_id = int.from_bytes(data[position + 5 : start], "big")  # a reserved bit set: no stream of ours
            if kind == _WINDOW_UPDATE:
                if length != 4:
                    break
                increment = int.from_bytes(data[start:end], "big")
                if not 0 < increment < 1 << 31:
                    break
                if stream_id:
                    stream = streams.get(stream_id)
                    if stream is None or stream.state_machine.state not in _WINDOW_STATES:
                        break
                    events += connection_input(ConnectionInputs.RECV_WINDOW_UPDATE)
                    frames, stream_events = stream.receive_window_update(increment)
                    h2c._prepare_for_sending(frames)
                    events += stream_events
                else:
                    events += connection_input(ConnectionInputs.RECV_WINDOW_UPDATE)
                    h2c.outbound_flow_control_window = guard_increment_window(
                        h2c.outbound_flow_control_window, increment
                    )
                    events.append(WindowUpdated(stream_id=0, delta=increment))
            elif kind in (_DATA, _HEADERS):
                stream = streams.get(stream_id)
                if stream is None or stream.state_machine.state is not StreamState.HALF_CLOSED_LOCAL:
                    break
                end_stream = bool(flags & _END_STREAM)
                if kind == _DATA:
                    if flags & _PADDED or not stream.state_machine.headers_received:
                        break
                    events += connection_input(ConnectionInputs.RECV_DATA)
                    h2c._inbound_flow_control_window_manager.window_consumed(length)
                    _, stream_events = stream.receive_data(data[start:end], end_stream, length)
                else:
                    if flags & (_PADDED | _PRIORITY) or not flags & _END_HEADERS:
                        break
                    headers = self._decode_block(data[start:end])
                    events += connection_input(ConnectionInputs.RECV_HEADERS)
                    _, stream_events = stream.receive_headers(headers, end_stream, h2c.config.header_encoding)
                events += stream_events
            else:
                break
            position = end
        return position

    def _decode_block(self, block: bytes) -> Any:
        """The headers of the HPACK header ``block``, as h2 decodes them.

        A reply's header blocks repeat byte for byte once the server's fields are in the decoder's table (grpc
        servers index ``content-type`` and ``grpc-status: 0``), and decoding one costs more than the rest of
        the reply. A block whose decoding left the table as it was is remembered: from the same table, the same
        bytes decode to the same headers and leave it the same again. Any change of the table (a decoding that
        changed it, or a read h2 handled itself) forgets every block remembered.
        """
        memo = self._hpack_memo
        headers = memo.get(block)
        if headers is not None:
            return headers
        table = self._h2.decoder.header_table
        before = (table.maxsize, tuple(table.dynamic_entries))
        headers = tuple(_h2_decode_headers(self._h2.decoder, block))
        if before == (table.maxsize, tuple(table.dynamic_entries)):
            if len(memo) >= _HPACK_MEMO_SIZE:
                memo.clear()
            memo[block] = headers
        else:
            memo.clear()
        return headers

    def send_headers(self, stream_id: int, headers: list[tuple[bytes, bytes]]) -> None:
        """``H2Connection.send_headers(stream_id, headers)`` for a new request stream: the same checks, state
        changes (connection, new stream, its state machine, authority and method) and bytes, in h2's order,
        without its per-header conversions, validation flags and frame objects (our headers are bytes, built and
        checked once by the transport; outbound validation is off)."""
        h2c = self._h2
        if stream_id in h2c.streams:
            h2c.send_headers(stream_id, headers)
            return
        max_open = h2c.remote_settings.max_concurrent_streams
        open_now = h2c.open_outbound_streams  # (also forgets closed streams, as in h2)
        if open_now + 1 > max_open:
            raise TooManyStreamsError(f"Max outbound streams is {max_open}, {open_now} open")
        h2c.state_machine.process_input(ConnectionInputs.SEND_HEADERS)
        stream = h2c._begin_new_stream(stream_id, AllowedStreamIDs(True))
        stream.state_machine.process_input(StreamInputs.SEND_HEADERS)
        block = h2c.encoder.encode(headers)
        frame_max = stream.max_outbound_frame_size or h2c.max_outbound_frame_size  # (set when the stream is made)
        out = h2c._data_to_send
        tail = stream_id.to_bytes(4, "big")
        kind = 0x1  # HEADERS, then CONTINUATION (0x9) for the rest of a block larger than a frame
        for start in range(0, len(block), frame_max):
            part = block[start : start + frame_max]
            flags = _END_HEADERS if start + frame_max >= len(block) else 0
            out += len(part).to_bytes(3, "big") + bytes((kind, flags)) + tail + part
            kind = 0x9
        if not block:
            out += b"\x00\x00\x00\x01" + bytes((_END_HEADERS,)) + tail
        stream._authority = authority_from_headers(headers)
        stream.request_method = extract_method_header(headers)

    def end_stream(self, stream_id: int, size: int) -> bool:
        """The state changes of ``H2Connection.send_data(stream_id, <size bytes>, end_stream=True)`` (its checks,
        the connection and stream state machines, both flow-control windows), in h2's order; the caller writes
        the frame (:func:`data_frame_head` and the bytes). False, with nothing changed, when h2 must do it all
        (a stream h2 does not have, a frame over the window or the frame size: h2 raises)."""
        h2c = self._h2
        stream = h2c.streams.get(stream_id)
        if stream is None or size > h2c.local_flow_control_window(stream_id) or size > h2c.max_outbound_frame_size:
            return False
        h2c.state_machine.process_input(ConnectionInputs.SEND_DATA)
        machine = stream.state_machine
        machine.process_input(StreamInputs.SEND_DATA)
        machine.process_input(StreamInputs.SEND_END_STREAM)
        stream.outbound_flow_control_window -= size
        h2c.outbound_flow_control_window -= size
        return True


def data_frame_head(size: int, stream_id: int) -> bytes:
    """The 9-byte header of a DATA frame of ``size`` bytes that ends stream ``stream_id`` (END_STREAM)."""
    return size.to_bytes(3, "big") + b"\x00\x01" + stream_id.to_bytes(4, "big")
