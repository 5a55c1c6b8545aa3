"""Bearer tokens to tenants: the token Secret's lines, hashed, and the lookup."""

from __future__ import annotations

import pytest

from agentfleet_runtime.core.tenants import DEFAULT_TENANT, TokenFile, parse_tokens, token_line


def test_hashed_lines_map_tokens_to_tenants_and_plain_lines_to_the_default(tmp_path):
    f = tmp_path / "tokens"
    f.write_text(f"# comment\n{token_line('acme', 'tok-a')}\n{token_line('globex', 'tok-g')}\nlegacy-plain\n")
    tf = TokenFile(str(f), check_every=0)
    assert tf.tenant_of("Bearer tok-a") == "acme" and tf.tenant_of("Bearer tok-g") == "globex"
    assert tf.tenant_of("Bearer legacy-plain") == DEFAULT_TENANT
    # The file holds no working token: its hash, used as a token, is refused.
    assert tf.tenant_of("Bearer " + token_line("acme", "tok-a").split()[1]) is None
    assert tf.tenant_of("Bearer nope") is None and tf.tenant_of(None) is None and tf.tenant_of("tok-a") is None
    assert "tok-a" not in f.read_text()


@pytest.mark.parametrize(
    "line", ["Acme sha256:" + "0" * 64, "acme sha256:abc", "acme md5:" + "0" * 64, "acme sha256:" + "0" * 64 + " x"]
)
def test_bad_lines_are_skipped(line, caplog):
    assert parse_tokens(line) == []
    assert "token line skipped" in caplog.text and line not in caplog.text


def test_tenant_names_are_checked():
    with pytest.raises(ValueError, match="lowercase"):
        token_line("Acme Corp", "t")
