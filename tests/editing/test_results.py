"""Results import: strict CSV parsing (all or nothing, line/column errors) and the z-test winner."""

from __future__ import annotations

import math

import pytest

from studio.editing.results import (
    MAX_ROWS,
    CellResult,
    ResultsError,
    parse_results_csv,
    pick_winner,
    two_proportion_z,
)

KNOWN = {"control", "c2-beach", "c3-slate"}


def refused(data: bytes, *fragments: str, known: set[str] = KNOWN) -> ResultsError:
    with pytest.raises(ResultsError) as caught:
        parse_results_csv(data, known)
    message = str(caught.value)
    assert message.startswith("results file refused, nothing was imported")
    for fragment in fragments:
        assert fragment in message, message
    return caught.value


def test_a_good_file_with_bom_odd_header_case_and_extra_columns() -> None:
    data = ("\ufeffCell ID, Impressions ,CLICKS,Conversions,Spend (EUR)\r\n"
            "control,1000,100,5,12.50\r\nc2-beach, 1000 ,130,9,13.00\r\n\r\n").encode("utf-8")  # fmt: skip
    result = parse_results_csv(data, KNOWN)
    assert result.rows == (CellResult("control", 1000, 100, 5), CellResult("c2-beach", 1000, 130, 9))
    assert result.ignored_columns == ("Spend (EUR)",)
    assert result.missing_cell_ids == ("c3-slate",)


def test_header_names_may_use_spaces_hyphens_and_any_case() -> None:
    data = b"CONVERSIONS,cell-id,Clicks,impressions\n3,control,10,100\n"
    assert parse_results_csv(data, KNOWN).rows == (CellResult("control", 100, 10, 3),)


def test_non_numeric_negative_and_decimal_counts_are_refused_with_line_and_column() -> None:
    data = (
        b"cell_id,impressions,clicks,conversions\ncontrol,1000,abc,1\nc2-beach,-5,0,0\nc3-slate,1000,1.5,1,\n"
    )
    error = refused(data, "line 2, column 3 (clicks): 'abc' is not a whole number",
                    "line 3, column 2 (impressions): a negative number is not a whole number",
                    "line 4: has 5 fields but the header has 4")  # fmt: skip
    assert len(error.problems) == 3


def test_decimals_and_thousands_separators_are_refused() -> None:
    data = b'cell_id,impressions,clicks,conversions\ncontrol,"1,000",10,1\nc2-beach,1000,10.0,1\n'
    refused(data, "line 2, column 2 (impressions): '1,000' is not a whole number",
            "line 3, column 3 (clicks): '10.0' is not a whole number")  # fmt: skip


def test_clicks_or_conversions_above_impressions_are_refused() -> None:
    data = b"cell_id,impressions,clicks,conversions\ncontrol,100,101,0\nc2-beach,100,10,200\n"
    refused(data, "line 2, column 3 (clicks): 101 clicks is more than the 100 impressions",
            "line 3, column 4 (conversions): 200 conversions is more than the 100 impressions")  # fmt: skip


def test_missing_header_is_refused() -> None:
    refused(b"control,1000,100,5\nc2-beach,1000,130,9\n",
            "line 1: the header row lacks the column(s) cell_id, impressions, clicks, conversions")  # fmt: skip
    refused(b"cell_id,impressions,clicks\ncontrol,1,1\n", "lacks the column(s) conversions")
    refused(b"cell_id,cell id,impressions,clicks,conversions\n", "cell_id appear more than once")


def test_duplicate_and_unknown_cells_are_refused() -> None:
    data = b"cell_id,impressions,clicks,conversions\ncontrol,10,1,0\nc9,10,1,0\ncontrol,20,2,0\n,5,1,0\n"
    refused(data, "line 3, column 1 (cell_id): unknown cell 'c9'",
            "line 4, column 1 (cell_id): cell 'control' already appears on line 2",
            "line 5, column 1 (cell_id): the cell id is empty")  # fmt: skip


def test_formula_looking_text_is_refused_not_evaluated() -> None:
    data = (b"cell_id,impressions,clicks,conversions\n"
            b'"=HYPERLINK(""http://evil"",""x"")",10,1,0\n@SUM(A1),10,1,0\ncontrol,=1+2,+1,-2+3\n')  # fmt: skip
    refused(data, "line 2, column 1 (cell_id): unknown cell '=HYPERLINK(\"http://evil\",\"x\")' (it looks like a spreadsheet formula)",
            "line 3, column 1 (cell_id): unknown cell '@SUM(A1)' (it looks like a spreadsheet formula)",
            "line 4, column 2 (impressions): '=1+2' is not a whole number",
            "line 4, column 3 (clicks): '+1' is not a whole number",
            "line 4, column 4 (conversions): '-2+3' is not a whole number")  # fmt: skip


def test_wrong_encoding_names_the_line_and_column_of_the_bad_byte() -> None:
    data = "cell_id,impressions,clicks,conversions\ncontrol,10,1,0\nc2-béach,10,1,0\n".encode("latin-1")
    refused(data, "line 3, column 5 (byte offset 58): not UTF-8 text", "CSV UTF-8")
    refused("cell_id\n".encode("utf-16"), "line 1, column 1 (byte offset 0): not UTF-8")


def test_empty_files_nul_bytes_and_broken_quotes_are_refused() -> None:
    refused(b"", "line 1: the file is empty")
    refused(b"\xef\xbb\xbf\r\n\r\n", "line 1: the file is empty")
    refused(
        b"cell_id,impressions,clicks,conversions\ncontrol,1\x00,1,0\n", "line 2: contains a NUL character"
    )
    refused(b'cell_id,impressions,clicks,conversions\ncontrol,"10,1,0\n', "broken CSV")


def test_a_quoted_field_over_two_lines_keeps_line_numbers_right() -> None:
    data = b'cell_id,impressions,clicks,conversions,note\ncontrol,10,1,0,"two\nlines"\nc2-beach,x,1,0,ok\n'
    refused(data, "line 4, column 2 (impressions): 'x' is not a whole number")


def test_size_limits() -> None:
    refused(b"x" * (5 * 1024 * 1024 + 1), "at most 5242880 (5 MB)")
    rows = "".join(f"c{i},1,0,0\n" for i in range(MAX_ROWS + 1))
    refused(
        ("cell_id,impressions,clicks,conversions\n" + rows).encode(), f"at most {MAX_ROWS} can be imported"
    )


def test_nothing_is_returned_when_one_row_is_bad() -> None:
    good = "".join(f"control,{i},0,0\n" for i in range(1))
    data = ("cell_id,impressions,clicks,conversions\n" + good + "c2-beach,10,11,0\n").encode()
    error = refused(data, "line 3, column 3 (clicks)")
    assert len(error.problems) == 1


# ---------------------------------------------------------------------------------------------- z-test


def test_two_proportion_z_matches_hand_computed_values() -> None:
    # 130/1000 vs 100/1000: pooled p = 0.115, SE = sqrt(0.115 * 0.885 * 0.002) = 0.0142671,
    # z = 0.03 / 0.0142671 = 2.1027, two-sided p = 2 * (1 - Phi(2.1027)) = 0.0355.
    z, p = two_proportion_z(130, 1000, 100, 1000) or (0.0, 0.0)
    assert z == pytest.approx(2.10274, abs=1e-5) and p == pytest.approx(0.035488, abs=1e-6)
    z, p = two_proportion_z(100, 1000, 130, 1000) or (0.0, 0.0)
    assert z == pytest.approx(-2.10274, abs=1e-5) and p == pytest.approx(0.035488, abs=1e-6)
    # 120/1000 vs 100/1000: z = 1.4293, p = 0.1529 (not significant).
    z, p = two_proportion_z(120, 1000, 100, 1000) or (0.0, 0.0)
    assert z == pytest.approx(1.42930, abs=1e-5) and p == pytest.approx(0.152918, abs=1e-6)
    # The textbook boundary: |z| = 1.959964 is p = 0.05.
    assert math.erfc(1.959964 / math.sqrt(2)) == pytest.approx(0.05, abs=1e-6)
    assert two_proportion_z(0, 100, 0, 100) is None and two_proportion_z(1, 0, 1, 10) is None


def test_a_significant_cell_is_the_winner() -> None:
    rows = [CellResult("control", 1000, 100, 10), CellResult("c2-beach", 1000, 130, 12),
            CellResult("c3-slate", 1000, 120, 11)]  # fmt: skip
    view = pick_winner(rows, "control", "ctr")
    assert view.verdict == "winner" and view.cell_id == "c2-beach"
    assert [c.cell_id for c in view.cells] == ["control", "c2-beach", "c3-slate"]
    best = view.cells[1]
    assert best.rate == pytest.approx(0.13) and best.lift == pytest.approx(0.30)
    assert best.p_value == pytest.approx(0.035488, abs=1e-6) and best.significant
    assert not view.cells[2].significant
    assert (
        view.summary
        == "c2-beach: winner on click-through rate (clicks / impressions) (c2-beach 13.00% vs control 10.00%, lift +30.0%, p = 0.0355)"
    )


def test_a_better_but_not_significant_cell_is_only_leading() -> None:
    rows = [CellResult("control", 1000, 100, 10), CellResult("c3-slate", 1000, 120, 11)]
    view = pick_winner(rows, "control")
    assert view.verdict == "leading (not significant)" and view.cell_id == "c3-slate"
    assert "p = 0.153" in view.summary and "lift +20.0%" in view.summary


def test_the_control_wins_when_it_beats_every_cell_significantly() -> None:
    rows = [
        CellResult("control", 1000, 130, 0),
        CellResult("c2-beach", 1000, 100, 0),
        CellResult("c3", 1000, 90, 0),
    ]
    view = pick_winner(rows, "control")
    assert view.verdict == "winner" and view.cell_id == "control"
    assert view.summary.startswith("control: winner") and "c2-beach 10.00% vs control 13.00%" in view.summary


def test_the_control_leads_when_cells_are_worse_but_not_significantly() -> None:
    rows = [CellResult("control", 1000, 100, 0), CellResult("c2-beach", 1000, 95, 0)]
    view = pick_winner(rows, "control")
    assert view.verdict == "leading (not significant)" and view.cell_id == "control"


def test_conversion_rate_is_per_click() -> None:
    rows = [CellResult("control", 10_000, 1000, 100), CellResult("c2-beach", 10_000, 1000, 130)]
    view = pick_winner(rows, "control", "cvr")
    assert view.cells[1].rate == pytest.approx(0.13) and view.cells[1].trials == 1000
    assert view.verdict == "winner" and view.cells[1].p_value == pytest.approx(0.035488, abs=1e-6)
    with pytest.raises(ResultsError, match="more conversions than clicks"):
        pick_winner([CellResult("control", 100, 5, 9), CellResult("c2", 100, 5, 1)], "control", "cvr")


def test_no_data_and_bad_calls() -> None:
    view = pick_winner([CellResult("control", 0, 0, 0), CellResult("c2", 0, 0, 0)], "control")
    assert view.verdict == "no data" and view.cell_id is None and "not enough data" in view.summary
    with pytest.raises(ResultsError, match="control cell 'nope' has no results"):
        pick_winner([CellResult("control", 10, 1, 0)], "nope")
    with pytest.raises(ResultsError, match="unknown metric 'roas'"):
        pick_winner([CellResult("control", 10, 1, 0)], "control", "roas")  # type: ignore[arg-type]
