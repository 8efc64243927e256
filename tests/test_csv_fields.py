"""flash_envs.data.csv_number: the one parser of numeric CSV fields behind every loader."""

from __future__ import annotations

import pytest

from flash_envs.data import DataFormatError, csv_number
from flash_envs.data.public import azure_function_trace
from flash_envs.data.trace_csv import TraceFormatError


@pytest.mark.parametrize("text, kwargs, value", [
    ("2.5", {"positive": True}, 2.5),
    ("0", {"positive": False}, 0.0),
    (" 3 ", {"positive": True, "integer": True}, 3.0),
    ("1e3", {"positive": True, "integer": True}, 1000.0),
])
def test_accepts(text, kwargs, value):
    assert csv_number("f.csv", 4, "x", text, **kwargs) == value


@pytest.mark.parametrize("text, kwargs, message", [
    ("abc", {"positive": True}, "f.csv:4: column 'x' holds 'abc', not a number"),
    ("", {"positive": False}, "holds '', not a number"),
    (None, {"positive": False}, "holds None, not a number"),
    ("nan", {"positive": False}, "holds 'nan', not a finite number"),
    ("-inf", {"positive": False}, "not a finite number"),
    ("0", {"positive": True}, "holds '0'; it must be > 0"),
    ("-1", {"positive": False}, "holds '-1'; it must be >= 0"),
    ("2.5", {"positive": True, "integer": True}, "holds '2.5', not a whole number"),
])
def test_rejects_naming_file_line_column_and_text(text, kwargs, message):
    with pytest.raises(DataFormatError, match=message.replace("(", r"\(")):
        csv_number("f.csv", 4, "x", text, **kwargs)


def test_raises_the_loaders_own_error():
    with pytest.raises(TraceFormatError):
        csv_number("t.csv", 2, "rate", "-3", positive=False, error=TraceFormatError)


@pytest.mark.parametrize("count, message", [
    ("nan", "holds 'nan', not a finite number"),
    ("inf", "holds 'inf', not a finite number"),
    ("-1", "holds '-1'; it must be >= 0"),
    ("", "holds '', not a number"),
    ("2.5", "holds '2.5', not a whole number"),   # invocations are counted; a fraction is a damaged or wrong file
])
def test_azure_counts_name_file_line_and_column(tmp_path, count, message):
    """A nan or inf count was reported as ``rates[6] = nan``, with no file, line or column."""
    path = tmp_path / "invocations.csv"
    path.write_text("HashOwner,HashApp,HashFunction,Trigger,1,2,3\n"
                    "o,a,f0,http,1,2,3\n"
                    f"o,a,f1,http,4,{count},6\n")
    with pytest.raises(TraceFormatError, match=f"invocations.csv:3: column '2' {message}"):
        azure_function_trace("f1", path)
    assert azure_function_trace(0, path).rates.tolist() == [1 / 60, 2 / 60, 3 / 60]
