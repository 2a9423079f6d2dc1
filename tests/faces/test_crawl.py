"""Crawl lists and fetching, against an HTTP server these tests start on 127.0.0.1."""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from dcgan_data import __version__
from dcgan_data.core.errors import InputError
from dcgan_data.faces.crawl_list import Entry, plan_units, read_crawl, read_unit
from dcgan_data.faces.fetch import FetchError, fetch, fetch_many
from dcgan_data.faces.options import FetchOptions
from dcgan_data.testing.photos import FACES, PHOTOS

JPEG = PHOTOS[0].read_bytes()


class ImageServer:
    """A local web server with one route per way a crawl goes wrong.

    /img/<name>  the sample photo or face photo of that name      /404  not found
    /flaky/<n>   500 on the first request, then the image         /slow  answers after 2 s
    /delay/<n>   a photo, after 0.15 s
    /loop        redirects to itself                              /html  a web page
    /truncated.jpg  the first half of a JPEG      /big  64 MB of JPEG-looking bytes, chunked
    /noai.jpg, /otherbot.jpg  an image with an X-Robots-Tag header
    """

    def __init__(self) -> None:
        self.images = {p.name: p.read_bytes() for p in [*PHOTOS, *FACES]}
        self.hits: Counter[str] = Counter()
        self.user_agents: set[str] = set()
        self.big_bytes_sent = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:
                server.hits[self.path] += 1
                server.user_agents.add(self.headers.get("User-Agent", ""))
                server.route(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.handle_error = lambda request, address: None  # clients hang up on purpose
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def route(self, h: BaseHTTPRequestHandler) -> None:
        path = h.path
        if path.startswith("/img/") and path[5:] in self.images:
            return send(h, 200, self.images[path[5:]])
        if path.startswith("/delay/"):
            time.sleep(0.15)
            return send(h, 200, JPEG)
        if path.startswith("/flaky/"):
            return send(h, 500 if self.hits[path] == 1 else 200, JPEG)
        if path == "/slow":
            time.sleep(2)
            return send(h, 200, JPEG)
        if path == "/loop":
            return send(h, 302, b"", {"Location": "/loop"})
        if path == "/html":
            return send(h, 200, b"<!doctype html><html><body>no image</body></html>",
                        {"Content-Type": "text/html"})
        if path == "/truncated.jpg":
            return send(h, 200, JPEG[: len(JPEG) // 2])
        if path == "/noai.jpg":
            return send(h, 200, JPEG, {"X-Robots-Tag": "noindex, noai"})
        if path == "/otherbot.jpg":
            return send(h, 200, JPEG, {"X-Robots-Tag": "otherbot: noimageai"})
        if path == "/big":
            return self.send_big(h)
        return send(h, 404, b"not found")

    def send_big(self, h: BaseHTTPRequestHandler) -> None:
        # No Content-Length: only counting while streaming can refuse this body.
        h.send_response(200)
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        block = JPEG[:4] + bytes(64 * 1024 - 4)
        try:
            for _ in range(1024):
                h.wfile.write(b"%x\r\n%s\r\n" % (len(block), block))
                self.big_bytes_sent += len(block)
            h.wfile.write(b"0\r\n\r\n")
        except OSError:  # the client hung up, as it should
            pass


def send(h: BaseHTTPRequestHandler, status: int, body: bytes, headers: dict | None = None):
    h.send_response(status)
    for name, value in {"Content-Type": "image/jpeg", **(headers or {})}.items():
        h.send_header(name, value)
    h.send_header("Content-Length", str(len(body)))
    h.end_headers()
    try:
        h.wfile.write(body)
    except OSError:
        pass


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    srv = ImageServer()
    yield srv
    srv.close()


FAST = FetchOptions(timeout=0.5, retries=1, backoff=0.05, max_bytes=2_000_000,
                    allow_private_addresses=True)  # the test server is on 127.0.0.1


# ---------------------------------------------------------------------------- crawl lists


def test_txt_list_urls_paths_labels_comments_and_malformed_lines(tmp_path):
    crawl = tmp_path / "crawl.txt"
    crawl.write_text(
        "# a comment\n"
        "http://example.com/a.jpg\n"
        "\n"
        "Ada Lovelace\thttps://example.com/b.jpg\n"
        "photos/c.jpg\n"
        "   # indented comment\n"
        "one\ttwo\tthree\n"
        "ftp://example.com/d.jpg\n"
        "http://\n"
        "\thttp://example.com/e.jpg\n"
        "this line is neither a URL nor a path\n"
    )
    entries, malformed = read_crawl(crawl)
    assert entries == [
        Entry(2, "http://example.com/a.jpg"),
        Entry(4, "https://example.com/b.jpg", "Ada Lovelace"),
        Entry(5, "photos/c.jpg"),
        Entry(10, "http://example.com/e.jpg"),
    ]
    assert [line for line, _ in malformed] == [7, 8, 9, 11]
    assert "3 tab-separated fields" in malformed[0][1]
    assert "unsupported scheme 'ftp'" in malformed[1][1]
    assert "neither a URL nor a path" in malformed[3][1]


def test_tsv_csv_jsonl_lists_use_the_url_column(tmp_path):
    (tmp_path / "a.tsv").write_text("name\turl\nAda\thttp://x.org/1.jpg\nbad row\n\tp.jpg\n")
    (tmp_path / "a.csv").write_text('id,url,label\n1,http://x.org/2.jpg,"Lovelace, Ada"\n2,,\n')
    (tmp_path / "a.jsonl").write_text(
        '{"url": "http://x.org/3.jpg", "name": "Ada"}\n{"URL": "p.jpg"}\nnot json\n[1]\n{"x": 1}\n'
    )
    entries, malformed = read_crawl(tmp_path / "a.tsv")
    assert entries == [Entry(2, "http://x.org/1.jpg", "Ada"), Entry(4, "p.jpg")]
    assert malformed == [(3, "1 fields, the header has 2")]
    entries, malformed = read_crawl(tmp_path / "a.csv")
    assert entries == [Entry(2, "http://x.org/2.jpg", "Lovelace, Ada")]
    assert malformed == [(3, "empty url")]
    entries, malformed = read_crawl(tmp_path / "a.jsonl")
    assert entries == [Entry(1, "http://x.org/3.jpg", "Ada"), Entry(2, "p.jpg")]
    assert [line for line, _ in malformed] == [3, 4, 5]

    (tmp_path / "nourl.csv").write_text("id,path\n1,a.jpg\n")
    with pytest.raises(InputError, match="no url column"):
        read_crawl(tmp_path / "nourl.csv")


def test_units_are_line_ranges_readable_on_their_own(tmp_path):
    crawl = tmp_path / "list.tsv"
    rows = [f"n{i}\thttp://x.org/{i}.jpg" for i in range(23)]
    crawl.write_text("name\turl\n" + "\n".join(rows) + "\n")
    units = plan_units(crawl, 10)
    assert [(u.first_line, u.lines) for u in units] == [(2, 10), (12, 10), (22, 3)]
    parsed = [e for u in units for e in read_unit(crawl, u)[0]]
    assert parsed == read_crawl(crawl)[0]
    assert parsed[-1] == Entry(24, "http://x.org/22.jpg", "n22")
    # editing one line changes that unit's digest only: a re-run redoes just that unit
    crawl.write_text("name\turl\n" + "\n".join(rows).replace("/15.jpg", "/15b.jpg") + "\n")
    changed = [a.digest != b.digest for a, b in zip(units, plan_units(crawl, 10), strict=True)]
    assert changed == [False, True, False]


# ---------------------------------------------------------------------------- fetching


def test_fetch_an_image_with_a_user_agent_naming_the_tool(server):
    assert fetch(f"{server.url}/img/{PHOTOS[0].name}", FAST) == JPEG
    assert any(ua.startswith(f"dcgan-data/{__version__}") for ua in server.user_agents)


@pytest.mark.parametrize(
    "path, reason, requests",
    [
        ("/404", "http_404", 1),  # not retried
        ("/loop", "too_many_redirects", 1 + FAST.max_redirects),
        ("/html", "not_an_image", 1),
        ("/noai.jpg", "noai", 1),
        ("/big", "too_large", 1),
    ],
)
def test_fetch_failures_have_reasons(server, path, reason, requests):
    with pytest.raises(FetchError) as info:
        fetch(server.url + path, FAST)
    assert info.value.reason == reason
    assert server.hits[path] == requests


def test_retry_after_500_then_succeeds(server):
    assert fetch(f"{server.url}/flaky/1", FAST) == JPEG
    assert server.hits["/flaky/1"] == 2


def test_slow_response_times_out_after_retries(server):
    start = time.perf_counter()
    with pytest.raises(FetchError) as info:
        fetch(f"{server.url}/slow", FAST)
    assert info.value.reason == "timeout"
    assert server.hits["/slow"] == 2  # one retry
    assert time.perf_counter() - start < 3  # 2 x 0.5 s timeouts + back-off, not 2 x 2 s


def test_declared_length_over_the_limit_is_refused_before_the_body(server):
    small = FetchOptions(timeout=0.5, retries=0, max_bytes=len(JPEG) - 1,
                         allow_private_addresses=True)
    with pytest.raises(FetchError, match="too_large: Content-Length"):
        fetch(f"{server.url}/img/{PHOTOS[0].name}", small)


def test_body_over_the_limit_is_refused_while_streaming(server):
    with pytest.raises(FetchError, match="too_large"):
        fetch(f"{server.url}/big", FAST)
    time.sleep(0.2)  # let the server notice the hang-up
    assert server.big_bytes_sent < 32 * 1024 * 1024  # of 64 MB: the client stopped reading


def test_noai_header_is_honoured_unless_overridden(server):
    ignore = FetchOptions(timeout=0.5, retries=0, respect_robots=False,
                          allow_private_addresses=True)
    assert fetch(f"{server.url}/noai.jpg", ignore) == JPEG
    assert fetch(f"{server.url}/otherbot.jpg", FAST) == JPEG  # addressed to another robot


def test_dead_url_and_local_paths(tmp_path):
    with pytest.raises(FetchError, match="dead_url"):
        fetch(f"http://127.0.0.1:{closed_port()}/x.jpg", FAST)
    (tmp_path / "a.jpg").write_bytes(JPEG)
    (tmp_path / "notes.txt").write_text("hello, not an image")
    local = FetchOptions(base_dir=tmp_path, max_bytes=len(JPEG))
    assert fetch("a.jpg", local) == JPEG
    assert fetch(str(tmp_path / "a.jpg"), local) == JPEG
    for source, reason in [("missing.jpg", "missing_file"), ("notes.txt", "not_an_image")]:
        with pytest.raises(FetchError) as info:
            fetch(source, local)
        assert info.value.reason == reason
    with pytest.raises(FetchError, match="too_large"):
        fetch("a.jpg", FetchOptions(base_dir=tmp_path, max_bytes=len(JPEG) - 1))


def test_fetch_many_returns_every_entry_once(server):
    entries = [Entry(i, f"{server.url}/img/{p.name}") for i, p in enumerate(PHOTOS[:12])]
    entries.append(Entry(99, f"{server.url}/404"))
    got = {entry.line: result for entry, result, _ in fetch_many(entries, FAST, workers=4)}
    assert sorted(got) == [e.line for e in entries]
    assert got[3] == PHOTOS[3].read_bytes()
    assert isinstance(got[99], FetchError) and got[99].reason == "http_404"


def test_a_deeply_nested_jsonl_line_is_one_malformed_line(tmp_path):
    crawl = tmp_path / "list.jsonl"
    nested = '{"url": "http://x.org/1.jpg", "name": ' + "[" * 5000 + "]" * 5000 + "}"
    crawl.write_text('{"url": "http://x.org/0.jpg"}\n' + "[" * 10_000 + "\n" + nested + "\n"
                     '{"url": "http://x.org/2.jpg"}\n')
    entries, malformed = read_crawl(crawl)
    assert [e.line for e in entries] == [1, 4]
    assert malformed == [(2, "nested too deeply"), (3, "nested too deeply")]


def test_units_count_entries_and_blank_lines_make_no_unit(tmp_path):
    crawl = tmp_path / "list.txt"
    crawl.write_text("\n" * 600 + "# c\n" * 100 + "http://x.org/a.jpg\n\n\nhttp://x.org/b.jpg\n"
                     "http://x.org/c.jpg\n" + "  \n" * 50)
    units = plan_units(crawl, 2)
    assert [(u.first_line, u.lines) for u in units] == [(1, 704), (705, 51)]
    assert [len(read_unit(crawl, u)[0]) for u in units] == [2, 1]
    (tmp_path / "blank.txt").write_text("\n \n# only comments\n" * 1000)
    assert plan_units(tmp_path / "blank.txt", 256) == []


def test_csv_records_of_empty_fields_make_no_unit(tmp_path):
    crawl = tmp_path / "list.csv"
    crawl.write_text("url,name\n" + ',,\n""," "\n' * 500 + '"#x",y\n' + "http://x.org/a.jpg,Ann\n"
                     + ",\n" * 300)
    units = plan_units(crawl, 2)
    assert [(u.first_line, u.lines) for u in units] == [(2, 1302)]
    assert read_unit(crawl, units[0]) == ([Entry(1003, "http://x.org/a.jpg", "Ann")], [])
