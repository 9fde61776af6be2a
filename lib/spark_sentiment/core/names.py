"""Table and column names: validated identifiers and backtick quoting, so no user value is ever spliced
into SQL or a column expression as code."""

from __future__ import annotations

import re

# name, db.name or catalog.db.name: letters, digits, underscores
TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*){0,2}$")


def is_table_identifier(text: str) -> bool:
    return bool(TABLE_NAME.match(text))


def quote(name: str) -> str:
    """One column name as a quoted identifier (a backtick inside is doubled): ``a`b`` -> ```a``b```."""
    return "`" + name.replace("`", "``") + "`"
