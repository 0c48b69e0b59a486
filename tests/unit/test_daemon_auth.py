"""Daemon tokens and roles: who is who, and when the daemon refuses to start."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.datastructures import Headers

from sequencer.faces.http.auth import (
    CLIENT_HEADER,
    CLIENT_VALUE,
    AuthConfig,
    AuthError,
    Role,
    digest,
    is_loopback,
    load_auth,
    parse_env,
    parse_tokens,
)
from sequencer.faces.http.gate import cross_site, own_origins, parse_origin

T_OP = "operator-token-0123456789"
T_ENG = "engineer-token-0123456789"


def test_tokens_file_maps_tokens_to_named_roles(tmp_path: Path) -> None:
    f = tmp_path / "tokens.yaml"
    f.write_text(f"tokens:\n  - {{name: alice, role: operator, token: {T_OP}}}\n"
                 f"  - {{name: carol, role: Engineer, sha256: {digest(T_ENG)}}}\n")
    auth = load_auth(f, env={})
    assert not auth.open
    alice, carol = auth.identify(T_OP), auth.identify(T_ENG)
    assert alice is not None and (alice.name, alice.role) == ("alice", Role.OPERATOR)
    assert carol is not None and (carol.name, carol.role) == ("carol", Role.ENGINEER)
    assert auth.identify("operator-token-012345678X") is None
    assert auth.identify("") is None and auth.identify(None) is None


def test_roles_are_ordered() -> None:
    assert Role.OPERATOR < Role.TECHNICIAN < Role.ENGINEER


def test_env_tokens_and_the_file_env_variable(tmp_path: Path) -> None:
    auth = load_auth(None, env={"VIAFORM_TOKENS": f"bob:technician:{T_OP}:with-colon"})
    bob = auth.identify(f"{T_OP}:with-colon")
    assert bob is not None and bob.role is Role.TECHNICIAN
    f = tmp_path / "t.yaml"
    f.write_text(f"tokens: [{{name: a, role: operator, token: {T_ENG}}}]\n")
    from_file = load_auth(None, env={"VIAFORM_TOKENS_FILE": str(f), "VIAFORM_TOKENS": "x"})
    assert from_file.identify(T_ENG) is not None  # the file wins over the inline variable


@pytest.mark.parametrize("doc, words", [
    ({"tokens": [{"name": "a", "role": "admin", "token": T_OP}]}, "role 'admin'"),
    ({"tokens": [{"name": "a", "role": "operator", "token": "short"}]}, "at least 16"),
    ({"tokens": [{"name": "a", "role": "operator"}]}, "exactly one of token or sha256"),
    ({"tokens": [{"name": "a", "role": "operator", "token": T_OP, "sha256": "0" * 64}]},
     "exactly one"),
    ({"tokens": [{"name": "a", "role": "operator", "sha256": "xyz"}]}, "64 hex"),
    ({"tokens": [{"name": "", "role": "operator", "token": T_OP}]}, "name"),
    ({"tokens": [{"name": "a", "role": "operator", "token": T_OP, "x": 1}]}, "unknown key"),
    ({"tokens": [{"name": "a", "role": "operator", "token": T_OP},
                 {"name": "b", "role": "engineer", "token": T_OP}]}, "already given to a"),
    ({"users": []}, "expected 'tokens:'"),
])
def test_bad_tokens_documents_are_refused_with_the_reason(doc: object, words: str) -> None:
    with pytest.raises(AuthError, match=words):
        parse_tokens(doc, "tokens.yaml")


def test_bad_env_entry_is_refused() -> None:
    with pytest.raises(AuthError, match="name:role:token"):
        parse_env("alice-operator")


def test_missing_tokens_file_is_an_error_not_an_open_daemon(tmp_path: Path) -> None:
    with pytest.raises(AuthError, match="no such tokens file"):
        load_auth(tmp_path / "nope.yaml", env={})


@pytest.mark.parametrize("host, loop", [("127.0.0.1", True), ("127.3.2.1", True),
                                        ("::1", True), ("[::1]", True), ("localhost", True),
                                        ("0.0.0.0", False), ("::", False),
                                        ("192.168.1.5", False), ("toolpc.fab", False)])
def test_loopback_detection(host: str, loop: bool) -> None:
    assert is_loopback(host) is loop


def test_open_daemon_only_on_loopback() -> None:
    open_auth = load_auth(None, env={})
    assert open_auth.open
    open_auth.check_bind("127.0.0.1")  # fine
    with pytest.raises(AuthError, match="without tokens"):
        open_auth.check_bind("0.0.0.0")
    with_tokens = parse_env(f"a:operator:{T_OP}")
    with_tokens.check_bind("0.0.0.0")  # fine: every request will carry a token


def test_empty_token_list_counts_as_no_tokens() -> None:
    auth = parse_tokens({"tokens": []}, "t.yaml")
    assert auth.open and isinstance(auth, AuthConfig)
    with pytest.raises(AuthError):
        auth.check_bind("10.0.0.1")


# --- the gate's cross-site rule (gate.py): which origins are the daemon's own ----------
@pytest.mark.parametrize("text, key", [
    ("http://127.0.0.1:8750", ("http", "127.0.0.1", 8750)),
    ("http://LocalHost:8750/docs?x=1", ("http", "localhost", 8750)),
    ("https://toolpc.fab", ("https", "toolpc.fab", 443)),
    ("http://[::1]:8750", ("http", "::1", 8750)),
    ("http://toolpc.fab", ("http", "toolpc.fab", 80)),
    ("null", None), ("file:///tmp/x.html", None), ("http://host:99999", None), ("", None),
])
def test_origin_and_referer_values_parse_to_scheme_host_port(text: str, key: object) -> None:
    assert parse_origin(text) == key


def test_own_origins_of_a_loopback_bind_and_the_host_header() -> None:
    own = own_origins("127.0.0.1:8750", ("127.0.0.1", 8750), open_mode=True)
    assert {("http", "localhost", 8750), ("http", "127.0.0.1", 8750),
            ("http", "::1", 8750)} <= own
    assert ("http", "127.0.0.1", 8751) not in own
    # open: a non-loopback Host header (DNS rebinding) is not the daemon's own
    assert ("http", "evil.example", 8750) not in own_origins(
        "evil.example:8750", ("127.0.0.1", 8750), open_mode=True)
    # tokens: the name the client used is; a wildcard bind names no host of its own
    with_tokens = own_origins("toolpc.fab:8750", ("0.0.0.0", 8750), open_mode=False)
    assert with_tokens == {("http", "toolpc.fab", 8750), ("https", "toolpc.fab", 8750)}
    assert ("http", "toolpc.fab", 80) in own_origins("toolpc.fab", None, open_mode=False)


@pytest.mark.parametrize("method, headers, open_mode, refused", [
    ("GET", {"origin": "http://evil.example"}, True, False),  # GETs are not checked
    ("POST", {"origin": "http://evil.example"}, True, True),
    ("POST", {"origin": "http://evil.example", CLIENT_HEADER: CLIENT_VALUE}, True, True),
    ("DELETE", {"origin": "http://evil.example"}, False, True),  # tokens do not help
    ("POST", {"referer": "http://evil.example/a"}, False, True),
    ("POST", {"origin": "http://127.0.0.1:8750", "referer": "http://evil.example/"}, True,
     False),  # Origin, when present, is the one that counts
    ("POST", {"referer": "http://localhost:8750/docs"}, True, False),
    ("POST", {}, True, True),  # open, no Origin, no CLI header
    ("PATCH", {CLIENT_HEADER: "something-else"}, True, True),
    ("POST", {CLIENT_HEADER: CLIENT_VALUE}, True, False),
    ("POST", {}, False, False),  # tokens: the token decides
])
def test_cross_site_rule(method: str, headers: dict[str, str], open_mode: bool,
                         refused: bool) -> None:
    scope_headers = Headers({"host": "127.0.0.1:8750", **headers})
    reason = cross_site(method, scope_headers, ("127.0.0.1", 8750), open_mode)
    assert (reason is not None) is refused, reason
    if refused:
        assert "nothing was changed" in str(reason)
