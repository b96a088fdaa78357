"""Turn fetched files into plain text: man pages (groff or our roff stripper) and HTML.

Man pages are rendered with ``groff -k -Tutf8 -mandoc`` (``-k`` runs preconv so Japanese
input decodes; ``-P-c -P-b -P-u`` turn off SGR escapes, overstrike bold and underline;
a very long line length ``-rLL`` keeps each paragraph on one line, so Japanese sentences
are not broken by hard wraps or padded by justification). Without groff, :func:`strip_roff`
removes requests and escapes; it is cruder but keeps the words.
"""

from __future__ import annotations

import html.parser
import re
import shutil
import subprocess
import zlib
from pathlib import Path

from fugaku_sim.errors import UserError

#: zlib's window bits for a gzip header and trailer (zlib manual, inflateInit2: 16 + 15)
GZIP_WBITS = 16 + zlib.MAX_WBITS
GROFF_ARGS = ["-k", "-Tutf8", "-mandoc", "-P-c", "-P-b", "-P-u", "-rLL=4000n", "-rcR=1"]

# A man header or footer line: "LS(1)   User Commands   LS(1)" / "GNU coreutils  2021  LS(1)".
_MAN_TITLE = re.compile(r"^\S+\([0-9][0-9a-zA-Z]*\)")
_MAN_FOOTER = re.compile(r"\S+\([0-9][0-9a-zA-Z]*\)\s*$")


def read_maybe_gz(path: Path) -> bytes:
    """The bytes of ``path``, gunzipped when its name ends in ``.gz``: at most
    :data:`fugaku_sim.io.MAX_TEXT_BYTES` of them (one document or JSON-lines file held in
    memory at a time; a gzip "bomb" of a few megabytes would otherwise grow to gigabytes).

    Raises:
        UserError: unreadable, larger than the limit (compressed or not), or a ``.gz`` that
            is not gzip or is cut short.
    """
    from fugaku_sim.io import MAX_TEXT_BYTES, read_bytes

    data = read_bytes(path, str(path), kind="text file")
    if not path.name.endswith(".gz"):
        return data
    parts, size = [], 0
    while data:  # gzip members back to back (RFC 1952, 2.2), each decompressed up to the limit
        member = zlib.decompressobj(GZIP_WBITS)
        try:
            parts.append(member.decompress(data, MAX_TEXT_BYTES + 1 - size))
        except zlib.error as exc:
            raise UserError(f"{path}: not a whole gzip file ({exc}); fetch it again") from None
        size += len(parts[-1])
        if size > MAX_TEXT_BYTES:
            raise UserError(f"{path}: decompresses to more than {MAX_TEXT_BYTES / 2**20:g} "
                            "MiB; split it into smaller files")
        if not member.eof:
            raise UserError(f"{path}: not a whole gzip file (it ends mid-stream); fetch it "
                            "again")
        data = member.unused_data
    return b"".join(parts)


def is_so_redirect(source: bytes) -> bool:
    """True for a man page that only includes another (``.so man7/uri.7``): count it once."""
    lines = [ln for ln in source.strip().splitlines() if ln and not ln.startswith(b'.\\"')]
    return len(lines) == 1 and lines[0].startswith(b".so ")


def render_man(source: bytes, groff: str | None = None) -> bytes:
    """Render roff man-page source to UTF-8 text (groff when available, else :func:`strip_roff`).

    Raises:
        RuntimeError: groff failed (non-zero exit with no output).
    """
    groff = groff if groff is not None else shutil.which("groff")
    if not groff:
        return strip_roff(source.decode("utf-8", errors="replace")).encode("utf-8")
    proc = subprocess.run([groff, *GROFF_ARGS], input=source, capture_output=True,
                          check=False, timeout=120)
    if proc.returncode != 0 and not proc.stdout:
        raise RuntimeError(f"groff failed: {proc.stderr.decode(errors='replace')[:200]}")
    return proc.stdout


def strip_man_boilerplate(text: str) -> tuple[str, int]:
    """Drop the header and footer lines groff adds to a man page; return text and lines dropped.

    Lines are also left-stripped (man indentation carries no meaning in plain text).
    """
    lines = [ln.strip() for ln in text.splitlines()]
    dropped = 0
    first = next((i for i, ln in enumerate(lines) if ln), None)
    if first is not None and _MAN_TITLE.match(lines[first]):
        lines[first] = ""
        dropped += 1
    last = next((i for i in range(len(lines) - 1, -1, -1) if lines[i]), None)
    if last is not None and _MAN_FOOTER.search(lines[last]):
        lines[last] = ""
        dropped += 1
    return "\n".join(lines).strip() + "\n", dropped


_ROFF_FONT = re.compile(r"\\f(\[[^\]]*\]|\(..|.)")
_ROFF_NAMED = {"(em": "\u2014", "(en": "\u2013", "(bu": "\u2022", "(co": "\u00a9",
               "(lq": "\u201c", "(rq": "\u201d", "(aq": "'", "(dq": '"', "(mi": "-",
               "(hy": "-", "(ti": "~", "(ha": "^", "(rs": "\\", "(oq": "\u2018",
               "(cq": "\u2019"}
_ROFF_ESCAPE = re.compile(r"\\(\(..|\[[^\]]*\]|\*\(..|\*\[[^\]]*\]|\*.|[sS][+-]?\d+|.)")


def _roff_escape(match: re.Match[str]) -> str:
    body = match.group(1)
    if body in _ROFF_NAMED:
        return _ROFF_NAMED[body]
    if body in ("-", "e", "\\"):
        return "-" if body == "-" else "\\"
    if body in ("&", "c", ")", "/", ",", "%", "^", "|", ":") or body.startswith(("*", "s", "S")):
        return ""
    if body == " " or body == "~" or body == "0":
        return " "
    if body.startswith("[") and body[1:3] == "u+" or body.startswith("[u"):
        try:
            return chr(int(body[2:-1], 16))
        except ValueError:
            return ""
    return body if len(body) == 1 and body.isalnum() else ""


def strip_roff(source: str) -> str:
    """Crude roff-to-text for man pages when groff is absent.

    Keeps the words: comments and most requests go; ``.SH``/``.SS`` titles and macro
    arguments of font requests (``.B``, ``.I``, ``.BR`` ...) stay as text; escapes such as
    ``\\fB`` and ``\\-`` are resolved or dropped.
    """
    out: list[str] = []
    for line in source.splitlines():
        if line.startswith(('.\\"', "'\\\"", '.\\\\"')) or line.strip() in (".", "'"):
            continue
        if line.startswith((".", "'")):
            parts = line[1:].split(None, 1)
            req = parts[0] if parts else ""
            arg = parts[1] if len(parts) > 1 else ""
            if req in ("SH", "SS"):
                out.extend(["", arg.strip('"')])
            elif req in ("B", "I", "SM", "SB") and arg:
                out.append(arg.strip('"'))
            elif req in ("BR", "RB", "IR", "RI", "BI", "IB") and arg:
                out.append("".join(w.strip('"') for w in re.findall(r'"[^"]*"|\S+', arg)))
            elif req in ("PP", "LP", "P", "sp"):
                out.append("")
            elif req == "IP" and arg:
                out.append(arg.split('"')[1] if arg.startswith('"') else arg.split()[0])
            continue
        line = _ROFF_FONT.sub("", line)
        out.append(_ROFF_ESCAPE.sub(_roff_escape, line))
    text = "\n".join(out)
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


class _HtmlText(html.parser.HTMLParser):
    """Collect visible text, with paragraph breaks at block elements."""

    BLOCK = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "pre",
             "dt", "dd", "table", "section", "blockquote", "title"}
    SKIP = {"script", "style", "head", "nav"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0
        self._pre = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SKIP:
            self._skip += 1
        elif tag in self.BLOCK:
            self.parts.append("\n\n")
        if tag == "pre":
            self._pre += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP:
            self._skip = max(0, self._skip - 1)
        elif tag in self.BLOCK:
            self.parts.append("\n\n")
        if tag == "pre":
            self._pre = max(0, self._pre - 1)

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        self.parts.append(data if self._pre else re.sub(r"\s+", " ", data))


def html_to_text(markup: str) -> str:
    """Visible text of an HTML page, paragraphs separated by blank lines."""
    parser = _HtmlText()
    parser.feed(markup)
    parser.close()
    text = "".join(parser.parts)
    lines = [ln.rstrip() for ln in text.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip() + "\n"


_KNOWN_LICENCES = [
    (r"(?i)public domain", "public-domain"), (r"\bBSD\b", "BSD"), (r"\bGPL-?2", "GPL-2"),
    (r"(?i)GNU General Public License", "GPL"), (r"\bMIT\b", "MIT"),
    (r"\bArtistic\b", "Artistic"), (r"DFSG free", "DFSG-free (various upstream licences)"),
]


def licence_from_copyright(text: str) -> str:
    """Short licence name from a Debian copyright file (DEP-5 ``License:`` fields, else words)."""
    fields = sorted({m.strip() for m in re.findall(r"^License:[ \t]*(\S.*)$", text, re.M)})
    if fields:
        return ", ".join(fields)
    found = [name for pattern, name in _KNOWN_LICENCES if re.search(pattern, text)]
    return ", ".join(dict.fromkeys(found)) or "see debian/copyright"
