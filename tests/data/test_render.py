"""Man pages (groff and our fallback roff stripper), HTML and licences."""

from __future__ import annotations

import shutil

import pytest

from fugaku_sim.data.render import (
    html_to_text,
    is_so_redirect,
    licence_from_copyright,
    render_man,
    strip_man_boilerplate,
    strip_roff,
)

MAN = """.\\" comment line
.TH LS 1 "2021年5月" "GNU coreutils" "ユーザーコマンド"
.SH 名前
ls \\- ディレクトリの内容を\\fBリスト\\fR表示する
.SH 書式
.B ls
[\\fIオプション\\fR]... [\\fIファイル\\fR]...
.TP
\\fB\\-a\\fR, \\fB\\-\\-all\\fR
\\&. で始まる要素を無視しない
"""


def test_strip_roff_keeps_words_and_drops_requests() -> None:
    text = strip_roff(MAN)
    assert "名前" in text and "ls - ディレクトリの内容をリスト表示する" in text
    assert "-a, --all" in text and "で始まる要素を無視しない" in text
    assert "comment" not in text and ".TH" not in text and "\\f" not in text


def test_render_without_groff_uses_stripper() -> None:
    out = render_man(MAN.encode(), groff="").decode()
    assert "ディレクトリの内容" in out


@pytest.mark.skipif(shutil.which("groff") is None, reason="groff not installed")
def test_groff_render_and_boilerplate_strip() -> None:
    text, dropped = strip_man_boilerplate(render_man(MAN.encode()).decode())
    assert dropped == 2
    assert text.startswith("名前\nls - ディレクトリの内容をリスト表示する")
    assert "LS(1)" not in text


def test_so_redirect() -> None:
    assert is_so_redirect(b".so man7/uri.7\n")
    assert not is_so_redirect(MAN.encode())


def test_html_to_text() -> None:
    page = ("<html><head><title>t</title><style>p{}</style></head><body><h1>見出し</h1>"
            "<p>本文&amp;その<b>続き</b></p><script>x=1</script><pre>a  b\n c</pre></body></html>")
    assert html_to_text(page) == "見出し\n\n本文&その続き\n\na  b\n c\n"


def test_licence_from_copyright() -> None:
    assert licence_from_copyright("Files: *\nLicense: GPL-2+\n") == "GPL-2+"
    assert licence_from_copyright("This document is in the public domain.") == "public-domain"
    assert "MIT" not in licence_from_copyright("their licenses permit free distribution")
