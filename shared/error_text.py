"""What of an error's text may reach a tenant: never a path on the machine that ran its step.

A stage's error is shown to the tenant (the run in the API, events, notifications). Exceptions raised by libraries
name the files they touched (`[Errno 2] No such file or directory: '/home/.../x'`, a database file it could not
lock, an extension directory), which tells an attacker how the host is laid out. `without_local_paths` replaces each
absolute path with `<path>` and leaves everything else, URLs included, as it was.
"""

from __future__ import annotations

import re

PATH_PLACEHOLDER = "<path>"

# A quoted absolute path (how DuckDB, OSError and most libraries print one), spaces and all.
_QUOTED_PATH = re.compile(r"""(["'`])/[^"'`\n]*\1""")
# An unquoted absolute path of two or more segments. Not after a word character, ':' or '/', so the path part of a
# URL (`https://host/a/b`), a ratio (`a/b`) or a date (`2026/11/01`) is left alone.
_BARE_PATH = re.compile(r"""(?<![\w:/.~-])/[^\s"'`/:,;()\[\]{}<>|]+(?:/[^\s"'`/:,;()\[\]{}<>|]*)+""")
_HOME_PATH = re.compile(r"""(?<![\w:/.~-])~/[^\s"'`:,;()\[\]{}<>|]*""")
_FILE_URL = re.compile(r"""\bfile://[^\s"'`]*""", re.IGNORECASE)


def without_local_paths(text: str) -> str:
    """`text` with every absolute file system path (`~/...` and `file://...` too) replaced by `<path>`."""
    text = _FILE_URL.sub(PATH_PLACEHOLDER, text)
    text = _QUOTED_PATH.sub(lambda m: f"{m.group(1)}{PATH_PLACEHOLDER}{m.group(1)}", text)
    text = _BARE_PATH.sub(PATH_PLACEHOLDER, text)
    return _HOME_PATH.sub(PATH_PLACEHOLDER, text)
