"""Reading a parquet file: any failure is a DataError naming the file. pyarrow reads some damage without an
error, so a table is also checked: as many rows as the footer counts (a damaged row-group header can read as
zero rows) and valid values (a damaged page can hold strings that are not UTF-8)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from repro.errors import DataError


def _unreadable(file: Path, exc: Exception) -> DataError:
    return DataError(file, f"not a readable parquet file ({exc})")


def column_names(file: Path) -> list[str]:
    try:
        return pq.read_schema(file).names
    except Exception as exc:  # noqa: BLE001 -- any reader failure is a data error on this file
        raise _unreadable(file, exc) from None


def read_table(file: Path, columns: list[str] | None = None) -> pa.Table:
    """`columns` of `file` (all when None), checked against the row count in its footer and validated."""
    try:  # a readable footer does not mean readable pages (a damaged download)
        parquet = pq.ParquetFile(file)
        table = parquet.read(columns=columns)
        table.validate(full=True)
    except Exception as exc:  # noqa: BLE001 -- pyarrow raises OSError, ArrowInvalid, ... on bad pages
        raise _unreadable(file, exc) from None
    meta = parquet.metadata
    in_groups = sum(meta.row_group(i).num_rows for i in range(meta.num_row_groups))
    if not table.num_rows == in_groups == meta.num_rows:
        raise DataError(file, f"damaged parquet file: its footer counts {meta.num_rows} rows, its row groups "
                              f"{in_groups}, and {table.num_rows} were read")
    return table
