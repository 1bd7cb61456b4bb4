"""Import an ad platform's results CSV onto the campaign's cells and name the winner.

:func:`parse_results_csv` is strict and all or nothing: UTF-8 (a BOM is fine), a header row naming
``cell_id, impressions, clicks, conversions`` (case, spaces and ``-`` are ignored: "Cell ID" works;
other columns are ignored and listed in the result), whole numbers >= 0, clicks and conversions not
above impressions, each known cell at most once. Every problem is collected with its line and column,
and nothing is returned unless there are none.

:func:`pick_winner` compares each cell with the control by a pooled two-proportion z-test
(two-sided, p < 0.05). A cell is called the winner only when that difference is significant;
otherwise the best cell is "leading (not significant)". No correction is made for testing several
cells against one control: with many cells, read p-values near 0.05 with care.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

MAX_BYTES = 5 * 1024 * 1024
MAX_ROWS = 100_000
MAX_COUNT = 10**12  #: more impressions than any single cell can have had
MAX_ERRORS_SHOWN = 20
ALPHA = 0.05
REQUIRED = ("cell_id", "impressions", "clicks", "conversions")
Metric = Literal["ctr", "cvr"]
Verdict = Literal["winner", "leading (not significant)", "no data"]
#: metric -> (successes field, trials field, label)
METRICS: dict[str, tuple[str, str, str]] = {
    "ctr": ("clicks", "impressions", "click-through rate (clicks / impressions)"),
    "cvr": ("conversions", "clicks", "conversion rate (conversions / clicks)"),
}
_WHOLE = re.compile(r"[0-9]+")
_FORMULA_START = ("=", "+", "-", "@")


class ResultsError(ValueError):
    """A results file refused; ``problems`` lists every "line N, column M (name): ..." found."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        shown = "\n".join(self.problems[:MAX_ERRORS_SHOWN])
        more = len(self.problems) - MAX_ERRORS_SHOWN
        tail = f"\n... and {more} more" if more > 0 else ""
        super().__init__(f"results file refused, nothing was imported:\n{shown}{tail}")


@dataclass(frozen=True)
class CellResult:
    cell_id: str
    impressions: int
    clicks: int
    conversions: int


@dataclass(frozen=True)
class ResultsFile:
    rows: tuple[CellResult, ...]
    ignored_columns: tuple[str, ...]  #: header names that were not used
    missing_cell_ids: tuple[str, ...]  #: known cells the file has no row for (sorted)


@dataclass(frozen=True)
class CellComparison:
    """One cell against the control. ``lift``: relative to the control's rate (None if that is 0);
    ``z``/``p_value``: None for the control itself or when there is no variance to test."""

    cell_id: str
    trials: int
    successes: int
    rate: float | None
    lift: float | None
    z: float | None
    p_value: float | None
    significant: bool


@dataclass(frozen=True)
class WinnerView:
    metric: str
    control_cell_id: str
    verdict: Verdict
    cell_id: str | None  #: the winner or the leading cell
    cells: tuple[CellComparison, ...]  #: control first, then by rate (highest first)
    summary: str


# ----------------------------------------------------------------------------------------------- parse


def parse_results_csv(data: bytes, known_cell_ids: set[str]) -> ResultsFile:
    """The results in ``data``, or :class:`ResultsError` listing every problem (nothing partial)."""
    records = _records(_decode(data))
    if not records or not any(cell.strip() for cell in records[0][1]):
        raise ResultsError(["line 1: the file is empty; export the results as CSV with a header row"])
    header = records[0][1]
    columns, ignored = _header(header)
    data_rows = [(line, row) for line, row in records[1:] if any(cell.strip() for cell in row)]
    if len(data_rows) > MAX_ROWS:
        raise ResultsError(
            [f"the file has {len(data_rows)} rows; at most {MAX_ROWS} can be imported at once"]
        )
    problems: list[str] = []
    results: list[CellResult] = []
    first_line: dict[str, int] = {}
    for line, row in data_rows:
        parsed = _row(line, row, len(header), columns, known_cell_ids, problems)
        if parsed is None:
            continue
        if parsed.cell_id in first_line:
            problems.append(f"line {line}, column {columns['cell_id'] + 1} (cell_id): cell {parsed.cell_id!r} "
                            f"already appears on line {first_line[parsed.cell_id]}; keep one row per cell")  # fmt: skip
            continue
        first_line[parsed.cell_id] = line
        results.append(parsed)
    if problems:
        raise ResultsError(problems)
    missing = tuple(sorted(known_cell_ids - set(first_line)))
    return ResultsFile(rows=tuple(results), ignored_columns=ignored, missing_cell_ids=missing)


def _decode(data: bytes) -> str:
    if len(data) > MAX_BYTES:
        raise ResultsError([f"the file is {len(data)} bytes; at most {MAX_BYTES} (5 MB) can be imported"])
    if not data.strip():
        raise ResultsError(["line 1: the file is empty; export the results as CSV with a header row"])
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ResultsError([f"line {line}, column {column} (byte offset {exc.start}): not UTF-8 text; save the CSV as "
                            "UTF-8 (Excel: 'CSV UTF-8')"]) from exc  # fmt: skip
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise ResultsError([f"line {line}: contains a NUL character; this is not a text CSV file"])
    return text


def _records(text: str) -> list[tuple[int, list[str]]]:
    """(first line, fields) per CSV record; a quoted field may span lines."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    records: list[tuple[int, list[str]]] = []
    last = 0
    try:
        for row in reader:
            records.append((last + 1, row))
            last = reader.line_num
    except csv.Error as exc:
        raise ResultsError([f"line {last + 1}: broken CSV ({exc}); check the quotes on that line"]) from exc
    return records


def _normalise(name: str) -> str:
    return re.sub(r"[\s\-]+", "_", name.strip().lower())


def _header(header: list[str]) -> tuple[dict[str, int], tuple[str, ...]]:
    names = [_normalise(name) for name in header]
    missing = [name for name in REQUIRED if name not in names]
    if missing:
        found = ", ".join(repr(n[:40]) for n in header[:8])
        raise ResultsError([f"line 1: the header row lacks the column(s) {', '.join(missing)} (found: {found}); "
                            f"the first line must name the columns {', '.join(REQUIRED)}"])  # fmt: skip
    repeated = sorted({name for name in names if names.count(name) > 1 and name in REQUIRED})
    if repeated:
        raise ResultsError(
            [f"line 1: the column(s) {', '.join(repeated)} appear more than once in the header"]
        )
    columns = {name: names.index(name) for name in REQUIRED}
    ignored = tuple(header[i].strip() for i, name in enumerate(names) if name not in REQUIRED)
    return columns, ignored


def _row(
    line: int, row: list[str], width: int, columns: dict[str, int], known: set[str], problems: list[str]
) -> CellResult | None:
    if len(row) != width:
        problems.append(
            f"line {line}: has {len(row)} fields but the header has {width}; check for stray commas"
        )
        return None
    before = len(problems)
    cell_id = row[columns["cell_id"]].strip()
    where = f"line {line}, column {columns['cell_id'] + 1} (cell_id)"
    if not cell_id:
        problems.append(f"{where}: the cell id is empty")
    elif cell_id not in known:
        hint = " (it looks like a spreadsheet formula)" if cell_id.startswith(_FORMULA_START) else ""
        problems.append(
            f"{where}: unknown cell {cell_id[:60]!r}{hint}; use the cell ids from the export manifest"
        )
    counts = {name: _count(line, columns[name], name, row[columns[name]], problems) for name in REQUIRED[1:]}
    impressions, clicks, conversions = counts["impressions"], counts["clicks"], counts["conversions"]
    if len(problems) > before or impressions is None or clicks is None or conversions is None:
        return None
    for name, value in (("clicks", clicks), ("conversions", conversions)):
        if value > impressions:
            problems.append(f"line {line}, column {columns[name] + 1} ({name}): {value} {name} is more than the "
                            f"{impressions} impressions; check the columns are not swapped")  # fmt: skip
    if len(problems) > before:
        return None
    return CellResult(cell_id, impressions, clicks, conversions)


def _count(line: int, column: int, name: str, raw: str, problems: list[str]) -> int | None:
    value = raw.strip()
    where = f"line {line}, column {column + 1} ({name})"
    if not _WHOLE.fullmatch(value):
        kind = (
            "a negative number" if value.startswith("-") and _WHOLE.fullmatch(value[1:]) else repr(value[:40])
        )
        problems.append(
            f"{where}: {kind} is not a whole number >= 0; write plain digits, no separators or decimals"
        )
        return None
    number = int(value)
    if number > MAX_COUNT:
        problems.append(f"{where}: {number} is implausibly large (max {MAX_COUNT})")
        return None
    return number


# ---------------------------------------------------------------------------------------------- winner


def two_proportion_z(
    successes_a: int, trials_a: int, successes_b: int, trials_b: int
) -> tuple[float, float] | None:
    """(z, two-sided p) of rate a - rate b with the pooled standard error; None when it is undefined."""
    if trials_a == 0 or trials_b == 0:
        return None
    pooled = (successes_a + successes_b) / (trials_a + trials_b)
    variance = pooled * (1 - pooled) * (1 / trials_a + 1 / trials_b)
    if variance <= 0:
        return None
    z = (successes_a / trials_a - successes_b / trials_b) / math.sqrt(variance)
    return z, math.erfc(abs(z) / math.sqrt(2))


def pick_winner(rows: Sequence[CellResult], control_cell_id: str, metric: Metric = "ctr") -> WinnerView:
    """Each cell against the control on ``metric``; the winner only when significant (p < 0.05)."""
    if metric not in METRICS:
        raise ResultsError([f"unknown metric {metric!r}; use one of {', '.join(METRICS)}"])
    successes_field, trials_field, label = METRICS[metric]
    counts = {row.cell_id: (getattr(row, successes_field), getattr(row, trials_field)) for row in rows}
    if control_cell_id not in counts:
        raise ResultsError([f"the control cell {control_cell_id!r} has no results; import its row first"])
    for cell_id, (successes, trials) in counts.items():
        if successes > trials:
            raise ResultsError([f"cell {cell_id!r} has more {successes_field} than {trials_field}: {metric} needs "
                                f"{successes_field} <= {trials_field} (view-through conversions?)"])  # fmt: skip
    control = _comparison(control_cell_id, counts[control_cell_id], None)
    others = sorted(
        (_comparison(cell_id, pair, counts[control_cell_id]) for cell_id, pair in counts.items() if cell_id != control_cell_id),
        key=lambda c: (-1.0 if c.rate is None else -c.rate, c.cell_id),
    )  # fmt: skip
    verdict, winner = _verdict(control, others)
    summary = _summary(verdict, winner, control, others, label)
    return WinnerView(metric, control_cell_id, verdict, winner, (control, *others), summary)


def _comparison(cell_id: str, pair: tuple[int, int], control: tuple[int, int] | None) -> CellComparison:
    """``pair``/``control``: (successes, trials); ``control`` None for the control cell itself."""
    successes, trials = pair
    rate = successes / trials if trials else None
    if control is None:
        return CellComparison(cell_id, trials, successes, rate, None, None, None, False)
    control_rate = control[0] / control[1] if control[1] else None
    lift = (rate - control_rate) / control_rate if rate is not None and control_rate else None
    z, p = two_proportion_z(successes, trials, *control) or (None, None)
    return CellComparison(cell_id, trials, successes, rate, lift, z, p, p is not None and p < ALPHA)


def _verdict(control: CellComparison, others: list[CellComparison]) -> tuple[Verdict, str | None]:
    rated = [c for c in others if c.rate is not None]
    if control.rate is None or not rated:
        return "no data", None
    better = [c for c in rated if c.significant and (c.rate or 0.0) > control.rate]
    if better:
        return "winner", better[0].cell_id  # sorted by rate, highest first
    if all(c.significant and (c.rate or 0.0) < control.rate for c in rated):
        return "winner", control.cell_id  # the control beats every cell
    leader = rated[0] if (rated[0].rate or 0.0) > control.rate else control
    return "leading (not significant)", leader.cell_id


def _summary(
    verdict: Verdict, winner: str | None, control: CellComparison, others: list[CellComparison], label: str
) -> str:
    rated = [c for c in others if c.rate is not None]
    if verdict == "no data" or control.rate is None or not rated:
        return f"not enough data to compare the {label}: the control and at least one cell need trials"
    # The numbers behind the verdict: the named cell's, or (the control named) the best other cell's.
    shown = next((c for c in rated if c.cell_id == winner), rated[0])
    numbers = f"{shown.cell_id} {shown.rate or 0.0:.2%} vs control {control.rate:.2%}"
    if shown.lift is not None:
        numbers += f", lift {shown.lift:+.1%}"
    if shown.p_value is not None:
        numbers += f", p = {shown.p_value:.3g}"
    return f"{winner}: {verdict} on {label} ({numbers})"
