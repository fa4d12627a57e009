"""The fast paths of aiotlp's HTTP/2 client (:mod:`aiotlp.transport._h2connection`): the frames of a common unary
call framed and parsed here, with h2's state changed for each as h2 itself changes it, in h2's order.

h2 keeps the protocol state (stream and connection state machines, flow-control windows, HPACK tables), but its
generic machinery for a frame (a frame object with its flag set, a ``repr`` for a trace log that is not kept, the
dispatch, header validation that is turned off) cost the bridge thread about 1 ms of CPU per 250 KB export.
:class:`FastFrames` does the same for the request HEADERS (:meth:`~FastFrames.send_headers`), the state changes
of the body's last DATA frame (:meth:`~FastFrames.end_stream`), and the reply's HEADERS, DATA, trailers and
WINDOW_UPDATEs (:meth:`~FastFrames.receive`, and :meth:`~FastFrames.acknowledge` for the DATA read); anything
else goes through h2. Only with the h2 internals it drives (:data:`AVAILABLE`, checked once at import: the
release, the attributes, and the entries of h2's state machine tables for the transitions of a unary call, which
the fast paths make themselves, calling h2's transition function where it does more than set the state; the
connection inputs of these frames, which change nothing in CLIENT_OPEN, are not fed to its machine at all).
``tests/transport/test_h2fastpath.py`` checks both ways against each other: the bytes written, the outcomes, and
h2's whole state (stream machines, windows, content lengths, HPACK tables).
"""

from __future__ import annotations

import struct
from typing import Any, Final

from h2.config import H2Configuration
from h2.connection import ConnectionInputs, ConnectionState, H2Connection, H2ConnectionStateMachine
from h2.events import DataReceived, ResponseReceived, StreamEnded, TrailersReceived, WindowUpdated
from h2.exceptions import FlowControlError, ProtocolError, TooManyStreamsError
from h2.stream import StreamState
from h2.utilities import guard_increment_window

__all__ = ["AVAILABLE", "TESTED_H2", "FastFrames", "data_frame_head"]

# where a stream takes a WINDOW_UPDATE (in h2's own words: its stream state machine's)
_WINDOW_STATES = frozenset({StreamState.OPEN, StreamState.HALF_CLOSED_LOCAL, StreamState.HALF_CLOSED_REMOTE})
_OPEN, _HALF_CLOSED_LOCAL, _CLOSED = StreamState.OPEN, StreamState.HALF_CLOSED_LOCAL, StreamState.CLOSED
_CLIENT_OPEN = ConnectionState.CLIENT_OPEN
# The connection inputs of a call's frames: in CLIENT_OPEN, each leaves the state as it is and does nothing else
# (checked against h2's table at import), so the fast paths do not feed them to the connection state machine.
_QUIET_INPUTS: Final = (
    ConnectionInputs.SEND_HEADERS,
    ConnectionInputs.SEND_DATA,
    ConnectionInputs.RECV_HEADERS,
    ConnectionInputs.RECV_DATA,
    ConnectionInputs.RECV_WINDOW_UPDATE,
)
_WINDOW_UPDATE_HEAD: Final = b"\x00\x00\x04\x08\x00"  # length 4, WINDOW_UPDATE, no flags (the stream id follows)
_MAX_WINDOW: Final = 2**31 - 1

# Frame types and flags the receive fast path reads (RFC 9113 section 6).
_DATA, _HEADERS, _WINDOW_UPDATE = 0x0, 0x1, 0x8
_END_STREAM, _END_HEADERS, _PADDED, _PRIORITY = 0x1, 0x4, 0x8, 0x20
_frame_head: Final = struct.Struct(">HBBBL").unpack_from  # a frame header: length (16 + 8 bits), type, flags, stream
_u32: Final = struct.Struct(">L").unpack_from
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
        from h2.stream import H2Stream, H2StreamStateMachine, StreamInputs
        from h2.stream import _transitions as stream_table
        from h2.utilities import authority_from_headers, extract_method_header  # noqa: F401
        from h2.windows import WindowManager

        connection_table = H2ConnectionStateMachine._transitions
        machine = H2StreamStateMachine
        expected = {  # the stream transitions a unary call goes through, as the fast paths make them
            (StreamState.IDLE, StreamInputs.SEND_HEADERS): (machine.request_sent, _OPEN),
            (_OPEN, StreamInputs.SEND_DATA): (None, _OPEN),
            (_OPEN, StreamInputs.SEND_END_STREAM): (None, _HALF_CLOSED_LOCAL),
            (_HALF_CLOSED_LOCAL, StreamInputs.RECV_HEADERS): (machine.response_received, _HALF_CLOSED_LOCAL),
            (_HALF_CLOSED_LOCAL, StreamInputs.RECV_DATA): (machine.data_received, _HALF_CLOSED_LOCAL),
            (_HALF_CLOSED_LOCAL, StreamInputs.RECV_END_STREAM): (machine.stream_ended, _CLOSED),
        }
        if any(stream_table.get(key) != value for key, value in expected.items()):
            return False
        if any(connection_table.get((_CLIENT_OPEN, input_)) != (None, _CLIENT_OPEN) for input_ in _QUIET_INPUTS):
            return False
        windows = WindowManager(100)
        windows.window_consumed(1)
        if vars(windows).keys() != {"max_window_size", "current_window_size", "_bytes_processed"}:
            return False

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
            and callable(getattr(H2Stream, "_track_content_length", None))
            and callable(getattr(H2Stream, "_initialize_content_length", None))
            and type(probe._inbound_flow_control_window_manager) is WindowManager
        )
    except Exception:  # pragma: no cover - another h2
        return False


AVAILABLE: Final = _h2_has_fast_path_internals()
"""Whether the installed h2 has what :class:`FastFrames` drives (else every frame goes through h2)."""
if AVAILABLE:
    from h2.connection import AllowedStreamIDs
    from h2.connection import _decode_headers as _h2_decode_headers
    from h2.stream import H2StreamStateMachine, StreamClosedBy, StreamInputs
    from h2.utilities import authority_from_headers, extract_method_header, is_informational_response

    _CLIENT_IDS = AllowedStreamIDs(True)
    _REQUEST_SENT = H2StreamStateMachine.request_sent
    _RECV_END_STREAM = StreamClosedBy.RECV_END_STREAM


class FastFrames:
    """The fast paths over one connection's ``H2Connection`` (see the module); use only when :data:`AVAILABLE`.

    ``quiet_machine`` says that ``h2.state_machine`` takes the connection inputs of a call's frames in the
    CLIENT_OPEN state as h2's own machine does (h2's, or a subclass that differs only for other inputs): those
    inputs change nothing there, so they are not fed to it. The stream transitions of a unary call are made
    here as h2's table makes them (checked at import: :data:`AVAILABLE`), calling h2's own transition functions
    where they do more than set the state. The connection's configuration must stay as it was when this was made
    (inbound headers neither normalized, validated nor decoded to ``str``: else headers go through h2's stream).
    """

    def __init__(self, h2: H2Connection, *, quiet_machine: bool = False) -> None:
        self._h2 = h2
        self._quiet = quiet_machine
        config = h2.config
        self._plain_headers = not (
            config.normalize_inbound_headers
            or config.validate_inbound_headers
            or isinstance(config.header_encoding, str)
        )
        # HPACK header block -> (its headers, informational, content-length), all decoded from the same decoder
        # table (see _decode_block); content-length is None, or -1 when it is not valid (h2 then raises).
        self._hpack_memo: dict[bytes, tuple[Any, bool, int | None]] = {}
        # the last request header block sent and its (authority, method), as h2 reads them from its headers
        self._last_block = b""
        self._last_request: tuple[bytes | None, bytes | None] = (None, None)

    def _connection_input(self, input_: ConnectionInputs) -> list[Any]:
        """Feed ``input_`` (one of :data:`_QUIET_INPUTS`) to the connection state machine, unless it is quiet."""
        machine = self._h2.state_machine
        if self._quiet and machine.state is _CLIENT_OPEN:
            return []
        return machine.process_input(input_)

    def receive(self, data: bytes) -> list[Any]:
        """``H2Connection.receive_data(data)``: the same events and the same state changes in h2, at a fraction of
        its cost for the frames of a common reply.

        A unary reply is a few small frames (HEADERS, DATA, trailers, and the server's WINDOW_UPDATEs), and h2
        spends most of the bridge thread's HTTP/2 time on them in its generic machinery: a frame object per frame
        with its flag set, a ``repr`` of each for a trace log that is not kept, the dispatch, header validation
        that is turned off. :meth:`_take` reads the frame headers itself and, for those frame kinds in
        the states a reply has, makes the changes ``receive_data`` would have made: the connection and stream
        state machines, the flow-control windows, the content-length tracking, the HPACK decoder. At the first
        frame it does not take (another kind, flags such as PADDED, PRIORITY or a HEADERS without END_HEADERS, a
        stream in another state, an incomplete frame), the rest of the read goes to ``receive_data``; so does
        every read while h2 holds buffered bytes. A ``ProtocolError`` ends the connection as h2 would (GOAWAY).
        """
        h2c = self._h2
        buffer = h2c.incoming_buffer
        if buffer._data or buffer._headers_buffer or h2c.state_machine.state is not _CLIENT_OPEN:
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
        quiet = self._quiet  # (the connection is CLIENT_OPEN, checked by receive, and no frame taken changes it)
        connection_input = h2c.state_machine.process_input
        limit = h2c.max_inbound_frame_size
        size = len(data)
        position = 0
        while size - position >= 9:
            # (a reserved bit set in the stream id: no stream of ours)
            high, low, kind, flags, stream_id = _frame_head(data, position)
            length = high << 8 | low
            start = position + 9
            end = start + length
            if end > size or length > limit:
                break
            if kind == _DATA:
                stream = streams.get(stream_id)
                if stream is None:
                    break
                machine = stream.state_machine
                if machine.state is not _HALF_CLOSED_LOCAL or flags & _PADDED or not machine.headers_received:
                    break
                if not quiet:
                    events += connection_input(ConnectionInputs.RECV_DATA)
                # (h2: the connection's window manager, then the stream's receive_data: its machine, its window,
                # the content length, END_STREAM)
                windows = h2c._inbound_flow_control_window_manager
                windows.current_window_size -= length
                if windows.current_window_size < 0:
                    raise FlowControlError("Flow control window shrunk below 0")
                event = DataReceived(stream_id=stream_id)
                windows = stream._inbound_window_manager
                windows.current_window_size -= length
                if windows.current_window_size < 0:
                    raise FlowControlError("Flow control window shrunk below 0")
                payload = data[start:end]
                if stream._expected_content_length is None:
                    stream._actual_content_length += length
                else:
                    stream._track_content_length(length, bool(flags & _END_STREAM))
                event.data = payload
                event.flow_controlled_length = length
                events.append(event)
                if flags & _END_STREAM:
                    machine.state = _CLOSED
                    machine.stream_closed_by = _RECV_END_STREAM
                    ended = StreamEnded(stream_id=stream_id)
                    event.stream_ended = ended
                    events.append(ended)
            elif kind == _HEADERS:
                stream = streams.get(stream_id)
                if stream is None:
                    break
                machine = stream.state_machine
                if (
                    machine.state is not _HALF_CLOSED_LOCAL
                    or flags & (_PADDED | _PRIORITY)
                    or not flags & _END_HEADERS
                    or machine.trailers_received
                    or machine.client is not True
                ):
                    break
                end_stream = bool(flags & _END_STREAM)
                headers, informational, content_length = self._decode_block(data[start:end])
                if not quiet:
                    events += connection_input(ConnectionInputs.RECV_HEADERS)
                if informational or content_length == -1 or not self._plain_headers:
                    # h2's own path: an informational response, or one it refuses, or headers it would convert
                    _, stream_events = stream.receive_headers(headers, end_stream, h2c.config.header_encoding)
                    events += stream_events
                else:
                    # h2's receive_headers: the machine's response_received, its stream_ended on END_STREAM, the
                    # expected content length, the trailers' END_STREAM check, the headers as a list
                    headers_event: ResponseReceived | TrailersReceived
                    if not machine.headers_received:
                        machine.headers_received = True
                        headers_event = ResponseReceived(stream_id=stream_id)
                    else:
                        machine.trailers_received = True
                        headers_event = TrailersReceived(stream_id=stream_id)
                    ended = None
                    if end_stream:
                        machine.state = _CLOSED
                        machine.stream_closed_by = _RECV_END_STREAM
                        ended = headers_event.stream_ended = StreamEnded(stream_id=stream_id)
                    stream._expected_content_length = 0 if stream.request_method == b"HEAD" else content_length
                    if ended is None and type(headers_event) is TrailersReceived:
                        raise ProtocolError("Trailers must have END_STREAM set")
                    headers_event.headers = list(headers)
                    events.append(headers_event)
                    if ended is not None:
                        events.append(ended)
            elif kind == _WINDOW_UPDATE:
                if length != 4:
                    break
                (increment,) = _u32(data, start)
                if not 0 < increment < 1 << 31:
                    break
                if stream_id:
                    stream = streams.get(stream_id)
                    if stream is None or stream.state_machine.state not in _WINDOW_STATES:
                        break
                    if not quiet:
                        events += connection_input(ConnectionInputs.RECV_WINDOW_UPDATE)
                    frames, stream_events = stream.receive_window_update(increment)
                    h2c._prepare_for_sending(frames)
                    events += stream_events
                else:
                    if not quiet:
                        events += connection_input(ConnectionInputs.RECV_WINDOW_UPDATE)
                    h2c.outbound_flow_control_window = guard_increment_window(
                        h2c.outbound_flow_control_window, increment
                    )
                    events.append(WindowUpdated(stream_id=0, delta=increment))
            else:
                break
            position = end
        return position

    def _decode_block(self, block: bytes) -> tuple[Any, bool, int | None]:
        """The headers of the HPACK header ``block`` as h2 decodes them, whether they are an informational
        response, and their content-length as h2 reads it (None: none; -1: one h2 refuses).

        A reply's header blocks repeat byte for byte once the server's fields are in the decoder's table (grpc
        servers index ``content-type`` and ``grpc-status: 0``), and decoding one costs more than the rest of
        the reply. A block whose decoding left the table as it was is remembered: from the same table, the same
        bytes decode to the same headers and leave it the same again. Any change of the table (a decoding that
        changed it, or a read h2 handled itself) forgets every block remembered.
        """
        memo = self._hpack_memo
        known = memo.get(block)
        if known is not None:
            return known
        table = self._h2.decoder.header_table
        before = (table.maxsize, tuple(table.dynamic_entries))
        headers = tuple(_h2_decode_headers(self._h2.decoder, block))
        content_length: int | None = None
        for name, value in headers:
            if name == b"content-length":
                if not value.isdigit() or (content_length is not None and int(value, 10) != content_length):
                    content_length = -1  # (h2 raises ProtocolError)
                    break
                content_length = int(value, 10)
        known = (headers, is_informational_response(headers), content_length)
        if before == (table.maxsize, tuple(table.dynamic_entries)):
            if len(memo) >= _HPACK_MEMO_SIZE:
                memo.clear()
            memo[block] = known
        else:
            memo.clear()
        return known

    def acknowledge(self, size: int, stream_id: int) -> None:
        """``H2Connection.acknowledge_received_data(size, stream_id)`` (``size`` > 0 flow-controlled bytes of a
        stream of ours): the connection's window manager, then the stream's if it is open, in h2's order, and
        their WINDOW_UPDATE frames (if any) queued as h2 queues them."""
        h2c = self._h2
        stream = h2c.streams.get(stream_id)
        if stream is None:
            h2c.acknowledge_received_data(size, stream_id)  # h2 decides (a closed stream, or none such)
            return
        frames = b""
        increment = h2c._inbound_flow_control_window_manager.process_bytes(size)
        if increment:
            frames = _WINDOW_UPDATE_HEAD + b"\x00\x00\x00\x00" + (increment & _MAX_WINDOW).to_bytes(4, "big")
        if stream.state_machine.state in _WINDOW_STATES:  # (h2: stream.open)
            increment = stream._inbound_window_manager.process_bytes(size)
            if increment:
                frames += _WINDOW_UPDATE_HEAD + stream_id.to_bytes(4, "big")
                frames += (increment & _MAX_WINDOW).to_bytes(4, "big")
        if frames:
            h2c._data_to_send += frames

    def send_headers(self, stream_id: int, headers: list[tuple[bytes, bytes]]) -> None:
        """``H2Connection.send_headers(stream_id, headers)`` for a new request stream: the same checks, state
        changes (connection, new stream, its state machine, authority and method) and bytes, in h2's order,
        without its per-header conversions, validation flags and frame objects (our headers are plain tuples of
        bytes, built and checked once by the transport; outbound validation is off)."""
        h2c = self._h2
        if stream_id in h2c.streams:
            h2c.send_headers(stream_id, headers)
            return
        max_open = h2c.remote_settings.max_concurrent_streams
        open_now = h2c.open_outbound_streams  # (also forgets closed streams, as in h2)
        if open_now + 1 > max_open:
            raise TooManyStreamsError(f"Max outbound streams is {max_open}, {open_now} open")
        self._connection_input(ConnectionInputs.SEND_HEADERS)
        stream = h2c._begin_new_stream(stream_id, _CLIENT_IDS)
        machine = stream.state_machine
        if machine.state is StreamState.IDLE:  # (a new stream is; h2's table: request_sent, to OPEN)
            machine.state = _OPEN
            _REQUEST_SENT(machine, StreamState.IDLE)
        else:  # pragma: no cover - h2 makes streams IDLE
            machine.process_input(StreamInputs.SEND_HEADERS)
        encoder = h2c.encoder
        encode = getattr(encoder, "encode_plain", None)
        block = encode(headers) if encode is not None else encoder.encode(headers)
        frame_max = stream.max_outbound_frame_size or h2c.max_outbound_frame_size  # (set when the stream is made)
        out = h2c._data_to_send
        tail = stream_id.to_bytes(4, "big")
        if len(block) <= frame_max:
            out += len(block).to_bytes(3, "big") + b"\x01\x04" + tail + block  # HEADERS, END_HEADERS
        else:
            kind = 0x1  # HEADERS, then CONTINUATION (0x9) for the rest of a block larger than a frame
            for start in range(0, len(block), frame_max):
                part = block[start : start + frame_max]
                flags = _END_HEADERS if start + frame_max >= len(block) else 0
                out += len(part).to_bytes(3, "big") + bytes((kind, flags)) + tail + part
                kind = 0x9
        # the same block is the same headers (the encoder's output decodes to its input), hence the same
        # authority and method
        if block != self._last_block:
            self._last_request = (authority_from_headers(headers), extract_method_header(headers))
            self._last_block = block
        stream._authority, stream.request_method = self._last_request

    def end_stream(self, stream_id: int, size: int) -> bool:
        """The state changes of ``H2Connection.send_data(stream_id, <size bytes>, end_stream=True)`` (its checks,
        the connection and stream state machines, both flow-control windows), in h2's order; the caller writes
        the frame (:func:`data_frame_head` and the bytes). False, with nothing changed, when h2 must do it all
        (a stream h2 does not have, a frame over the window or the frame size: h2 raises)."""
        h2c = self._h2
        stream = h2c.streams.get(stream_id)
        if stream is None:
            return False
        window = h2c.outbound_flow_control_window
        if stream.outbound_flow_control_window < window:
            window = stream.outbound_flow_control_window
        if size > window or size > h2c.max_outbound_frame_size:
            return False
        self._connection_input(ConnectionInputs.SEND_DATA)
        machine = stream.state_machine
        if machine.state is _OPEN:  # h2's table: SEND_DATA stays OPEN, SEND_END_STREAM goes HALF_CLOSED_LOCAL
            machine.state = _HALF_CLOSED_LOCAL
        else:
            machine.process_input(StreamInputs.SEND_DATA)
            machine.process_input(StreamInputs.SEND_END_STREAM)
        stream.outbound_flow_control_window -= size
        h2c.outbound_flow_control_window -= size
        return True


def data_frame_head(size: int, stream_id: int) -> bytes:
    """The 9-byte header of a DATA frame of ``size`` bytes that ends stream ``stream_id`` (END_STREAM)."""
    return size.to_bytes(3, "big") + b"\x00\x01" + stream_id.to_bytes(4, "big")
