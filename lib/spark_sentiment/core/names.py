"""Table and column names: validated identifiers and backtick quoting, so no user value is ever spliced
into SQL or a column expression as code."""

from __future__ import annotations

import re

# One part of a table name: letters, digits, underscores, or anything in backticks (a backtick inside doubled),
# as Unity Catalog names such as `my-catalog` need.
_PART = r"(?:[A-Za-z_][A-Za-z0-9_]*|`(?:[^`]|``)+`)"
# name, db.name or catalog.db.name
TABLE_NAME = re.compile(rf"^{_PART}(?:\.{_PART}){{0,2}}$")


def is_table_identifier(text: str) -> bool:
    """``name``, ``db.name`` or ``catalog.db.name``; parts may be backtick-quoted (`` `my-catalog`.ml.t ``)."""
    return bool(TABLE_NAME.match(text))


def quote(name: str) -> str:
    """One column name as a quoted identifier (a backtick inside is doubled): ``a`b`` -> ```a``b```."""
    return "`" + name.replace("`", "``") + "`"
