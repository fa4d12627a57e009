"""The HTTP/1.1 client's parsed response heads (``_h1._parse_head`` remembers the sections it parsed lately):
a head read again parses the same, each caller gets headers of its own, and a malformed head fails every time.
White-box, on purpose: the memo is invisible through the client but for its speed."""

from __future__ import annotations

import pytest

from aiotlp.transport._h1 import BadResponse, _parse_head, _parse_head_once

HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 5\r\nDate: Mon, 07 Dec 2026"


def test_a_head_read_again_parses_the_same_and_the_headers_are_the_callers_own() -> None:
    first = _parse_head(HEAD)
    assert first == _parse_head_once(HEAD)
    first[3]["content-length"] = "999"  # a caller changing its dict changes nobody else's
    second = _parse_head(HEAD)
    assert second == _parse_head_once(HEAD)
    assert second[3]["content-length"] == "5"
    assert second[3] is not first[3]


def test_many_heads_each_parse_as_themselves() -> None:
    heads = [HEAD.replace(b"200 OK", b"%d X" % code) for code in range(200, 240)]
    for _ in range(3):
        for head in heads:
            assert _parse_head(head) == _parse_head_once(head)


@pytest.mark.parametrize("head", [b"HTTP/1.1 20 OK", b"HTTP/1.1 200 OK\r\n folded: x", b"HTTP/2 200"])
def test_a_malformed_head_fails_every_time(head: bytes) -> None:
    for _ in range(2):
        with pytest.raises(BadResponse):
            _parse_head(head)
