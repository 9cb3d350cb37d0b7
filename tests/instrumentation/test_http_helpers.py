"""Secret-free URLs and request attributes shared by the HTTP instrumentations."""

import pytest

from lazypatch.instrumentation import _http


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://example.com/a?b=1", "http://example.com/a?b=1"),
        ("https://user:pw@example.com:8443/p", "https://REDACTED:REDACTED@example.com:8443/p"),
        ("https://token@example.com/p", "https://REDACTED:REDACTED@example.com/p"),
        (
            "https://s3.example.com/o?AWSAccessKeyId=AK&Signature=xyz&Expires=1",
            "https://s3.example.com/o?AWSAccessKeyId=REDACTED&Signature=REDACTED&Expires=1",
        ),
        (
            "https://g.example.com/o?X-Goog-Signature=abc&x=1#frag",
            "https://g.example.com/o?X-Goog-Signature=REDACTED&x=1#frag",
        ),
        ("https://b.example.com/c?sv=1&sig=abc%2Bdef", "https://b.example.com/c?sv=1&sig=REDACTED"),
        ("http://h/p?TOKEN=t&token=&q=token", "http://h/p?TOKEN=REDACTED&token=&q=token"),
        ("http://u:p@h/p?access_token=t", "http://REDACTED:REDACTED@h/p?access_token=REDACTED"),
    ],
)
def test_redact_url(url, expected):
    assert _http.redact_url(url) == expected


def test_url_attributes_default_ports_and_cache():
    attributes = _http.url_attributes("https://user:pw@example.com/x?sig=s")
    assert attributes == (
        {
            "url.full": "https://REDACTED:REDACTED@example.com/x?sig=REDACTED",
            "server.address": "example.com",
            "server.port": 443,
            "network.peer.address": "example.com",
            "network.peer.port": 443,
        },
        {"server.address": "example.com", "server.port": 443},
    )
    assert _http.url_attributes("https://user:pw@example.com/x?sig=s") is attributes
    assert _http.url_attributes("http://[::1]:8080/")[0]["server.port"] == 8080
    assert _http.url_attributes("http://[::1]:8080/")[0]["server.address"] == "::1"


def test_method_attributes():
    attributes = {}
    assert _http.method_attributes("GET", attributes) == "GET"
    assert attributes == {"http.request.method": "GET"}
    attributes = {}
    assert _http.method_attributes("PURGE", attributes) == "HTTP"
    assert attributes == {
        "http.request.method": "_OTHER",
        "http.request.method_original": "PURGE",
    }


def test_server_attributes():
    environ = {
        "wsgi.url_scheme": "https",
        "QUERY_STRING": "token=t&a=1",
        "REMOTE_ADDR": "10.0.0.1",
        "REMOTE_PORT": "50123",
        "HTTP_HOST": "shop.example:8443",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_USER_AGENT": "ua/1",
        "HTTP_AUTHORIZATION": "Bearer secret",
    }
    name, attributes, metric = _http.server_attributes(
        environ, "GET", "/items/3", "/items/<int:id>"
    )
    assert name == "GET /items/<int:id>"
    assert attributes == {
        "http.request.method": "GET",
        "url.path": "/items/3",
        "url.scheme": "https",
        "url.query": "token=REDACTED&a=1",
        "http.route": "/items/<int:id>",
        "server.address": "shop.example",
        "server.port": 8443,
        "client.address": "10.0.0.1",
        "client.port": 50123,
        "network.protocol.version": "1.1",
        "user_agent.original": "ua/1",
    }
    assert metric == {
        "http.request.method": "GET",
        "url.scheme": "https",
        "http.route": "/items/<int:id>",
        "network.protocol.version": "1.1",
    }
    assert _http.server_attributes({}, "GET", "/nope", None)[0] == "GET"


@pytest.mark.parametrize(
    "environ, expected",
    [
        ({"HTTP_HOST": "example.com"}, ("example.com", 80)),
        ({"HTTP_HOST": "example.com", "wsgi.url_scheme": "https"}, ("example.com", 443)),
        ({"HTTP_HOST": "[::1]:8080"}, ("::1", 8080)),
        ({"HTTP_HOST": "[::1]"}, ("::1", 80)),
        ({"SERVER_NAME": "srv", "SERVER_PORT": "5000"}, ("srv", 5000)),
        ({"HTTP_HOST": "example.com:bad"}, ("example.com", None)),
    ],
)
def test_server_address_and_port(environ, expected):
    attributes = _http.server_attributes(environ, "GET", "/", None)[1]
    assert (attributes.get("server.address"), attributes.get("server.port")) == expected


def test_environ_getter_reads_propagation_headers():
    environ = {"HTTP_TRACEPARENT": "tp", "HTTP_X_OTHER": "o", "PATH_INFO": "/"}
    assert _http.environ_getter.get(environ, "traceparent") == ["tp"]
    assert _http.environ_getter.get(environ, "tracestate") is None
    assert sorted(_http.environ_getter.keys(environ)) == ["traceparent", "x-other"]
