"""The reference implementation over real HTTP/1.1 on loopback: what workerd-observed.md records."""

from __future__ import annotations

import asyncio
import concurrent.futures
import http.client
import shutil
import socket
import subprocess
import threading
import urllib.request

import pytest

from reference_impl import FailingService, JsError, Response, StaticService
from tests.reference_helpers import assert_monitor_ok, runtime

LISTENER_500 = (b"HTTP/1.1 500 Internal Server Error\r\nconnection: close\r\ncontent-length: 21\r\n\r\n"
                b"Internal Server Error")

after_response = threading.Event()
#: the /wait handler's waitUntil task ends only once the test has read the response
may_finish = threading.Event()


class App:
    async def fetch(self, request, env, ctx):  # type: ignore[no-untyped-def]
        path = request.url.split("/", 3)[3]
        if path == "ok":
            return Response("ok")
        if path == "echo":
            return Response(await request.body())
        if path == "throw":
            raise JsError("boom")
        if path == "pass":
            ctx.pass_through_on_exception()
            raise JsError("boom")
        if path == "stream":
            ctx.pass_through_on_exception()

            async def body():  # type: ignore[no-untyped-def]
                yield b"first"
                await asyncio.sleep(0.002)
                raise JsError("stream broke")

            return Response(body())
        if path == "hang":
            await asyncio.get_running_loop().create_future()
        if path == "wait":
            async def later() -> None:
                while not may_finish.is_set():
                    await asyncio.sleep(0.002)
                after_response.set()

            ctx.wait_until(later())
            return Response("responded")
        return Response("not found", status=404)


def exchange(port: int, raw: bytes, timeout: float = 5.0) -> bytes:
    """Send ``raw`` and read until the server closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(raw)
        out = b""
        while True:
            data = s.recv(65536)
            if not data:
                return out
            out += data


def get(path: str) -> bytes:
    return f"GET /{path} HTTP/1.1\r\nHost: example.test\r\n\r\n".encode()


@pytest.fixture
def server():  # type: ignore[no-untyped-def]
    with runtime(threads=2) as rt:
        fb = StaticService("fb", b"from fallback")
        rt.add_service(fb)
        rt.add_service(FailingService("down"))
        rt.add_worker("app", App, global_outbound="fb")
        rt.add_worker("app-down", App, global_outbound="down")
        main = rt.serve("app")
        down = rt.serve("app-down")
        yield rt, main, down, fb


def test_a_real_client_gets_a_response(server) -> None:  # type: ignore[no-untyped-def]
    rt, main, _, _ = server
    with urllib.request.urlopen(main.url + "/ok", timeout=5) as resp:
        assert resp.status == 200 and resp.read() == b"ok"
    req = urllib.request.Request(main.url + "/echo", data=b"hello body", method="POST")
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert resp.read() == b"hello body"
    rt.settle()
    assert_monitor_ok(rt)


def test_uncaught_exception_is_the_listeners_500_and_the_connection_closes(server) -> None:  # type: ignore[no-untyped-def]
    rt, main, _, _ = server
    assert exchange(main.port, get("throw")) == LISTENER_500
    assert exchange(main.port, get("hang")) == LISTENER_500
    rt.settle()
    assert rt.logged("Uncaught exception")


def test_pass_through_serves_the_fallbacks_response(server) -> None:  # type: ignore[no-untyped-def]
    rt, main, _, fb = server
    req = urllib.request.Request(main.url + "/pass", data=b"the body", method="PUT", headers={"X-Test": "1"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert resp.status == 200 and resp.read() == b"from fallback"
    method, url, headers, body = fb.received[-1]
    assert (method, url, body) == ("PUT", f"http://127.0.0.1:{main.port}/pass", b"the body")
    assert ("X-Test", "1") in headers or ("x-test", "1") in headers
    rt.settle()
    assert_monitor_ok(rt)


def test_a_failing_fallback_gives_an_empty_500_and_keeps_the_connection(server) -> None:  # type: ignore[no-untyped-def]
    _rt, _, down, _ = server
    conn = http.client.HTTPConnection("127.0.0.1", down.port, timeout=5)
    conn.request("GET", "/pass")
    resp = conn.getresponse()
    assert resp.status == 500 and resp.read() == b""
    assert resp.getheader("content-length") == "0" and resp.getheader("connection") is None
    conn.request("GET", "/ok")  # the same connection still works
    resp = conn.getresponse()
    assert resp.status == 200 and resp.read() == b"ok"
    conn.close()


def test_a_stream_failing_after_the_headers_truncates_the_chunked_body(server) -> None:  # type: ignore[no-untyped-def]
    _rt, main, _, fb = server
    before = len(fb.received)
    out = exchange(main.port, get("stream"))
    head, _, body = out.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert b"transfer-encoding: chunked" in head.lower()
    assert body == b"5\r\nfirst\r\n"  # no terminating 0-chunk: truncated
    assert len(fb.received) == before  # no fail-open after headers
    conn = http.client.HTTPConnection("127.0.0.1", main.port, timeout=5)
    conn.request("GET", "/stream")
    with pytest.raises(http.client.IncompleteRead):
        conn.getresponse().read()
    conn.close()


def test_wait_until_work_finishes_after_the_response(server) -> None:  # type: ignore[no-untyped-def]
    rt, main, _, _ = server
    after_response.clear()
    may_finish.clear()
    with urllib.request.urlopen(main.url + "/wait", timeout=5) as resp:
        assert resp.read() == b"responded"  # while the waitUntil task is still running
        assert not after_response.is_set()
    may_finish.set()
    assert after_response.wait(5)  # and it ran to its end after the response
    rt.settle()
    assert_monitor_ok(rt)


def test_keep_alive_serves_several_requests_on_one_connection(server) -> None:  # type: ignore[no-untyped-def]
    _rt, main, _, _ = server
    conn = http.client.HTTPConnection("127.0.0.1", main.port, timeout=5)
    for _ in range(3):
        conn.request("GET", "/ok")
        assert conn.getresponse().read() == b"ok"
    conn.close()


def test_concurrent_clients_are_served_by_both_threads(server) -> None:  # type: ignore[no-untyped-def]
    rt, main, _, _ = server

    def one(_: int) -> bytes:
        with urllib.request.urlopen(main.url + "/ok", timeout=10) as resp:
            return bytes(resp.read())

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        assert list(pool.map(one, range(40))) == [b"ok"] * 40
    rt.settle()
    assert_monitor_ok(rt)


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_sees_the_listeners_500(server) -> None:  # type: ignore[no-untyped-def]
    _rt, main, _, _ = server
    out = subprocess.run(["curl", "-s", "-i", main.url + "/throw"], capture_output=True, timeout=10)
    assert out.stdout.replace(b"\r\n", b"\n") == LISTENER_500.replace(b"\r\n", b"\n")
