"""The report browser: the index from a folder in Python, then the page in a browser."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from playwright.sync_api import expect

from neuroflux.dashboards.report_browser import ReportBrowser, read_runs

PHONE = 390
ROWS = ".tabulator-row"


def write_run(root: Path, notebook: str, run_id: str, **fields) -> Path:
    folder = root / notebook / run_id
    folder.mkdir(parents=True)
    record = {"notebook": notebook, "run_id": run_id, "status": "ok", **fields}
    (folder / "run.json").write_text(json.dumps(record))
    (folder / "report.html").write_text("<p>report</p>")
    return folder


@pytest.fixture
def reports(tmp_path):
    write_run(
        tmp_path,
        "study",
        "20260101T000000Z-aaaaaa",
        started="2026-01-01T00:00:00",
        parameters={"window": 5},
    )
    failed = write_run(
        tmp_path,
        "study",
        "20260102T000000Z-bbbbbb",
        started="2026-01-02T00:00:00",
        parameters={"window": 500},
        status="failed",
        error="ValueError: window 500 too long",
    )
    (failed / "metrics.json").write_text('{"sharpe_ratio": 1.23456789}')
    broken = tmp_path / "other" / "20260103T000000Z-cccccc"
    broken.mkdir(parents=True)
    (broken / "run.json").write_text('{"notebook": "other",')
    return tmp_path


def test_read_runs_lists_every_run_newest_first_and_names_a_bad_file(reports):
    runs = read_runs(reports)

    assert list(runs["run_id"]) == [
        "20260102T000000Z-bbbbbb",
        "20260101T000000Z-aaaaaa",
        "20260103T000000Z-cccccc",
    ]
    failed, ok, broken = (row for _, row in runs.iterrows())
    assert failed["parameters"] == "window=500"
    assert failed["metrics"] == "sharpe_ratio=1.23457"
    assert failed["error"] == "ValueError: window 500 too long"
    assert ok["report"] == "study/20260101T000000Z-aaaaaa/report.html"
    assert broken["status"] == "invalid"
    assert broken["notebook"] == "other"
    assert (
        str(reports / "other" / "20260103T000000Z-cccccc" / "run.json")
        in (broken["error"])
    )
    assert "not valid JSON" in broken["error"]


def test_read_runs_rejects_a_run_json_that_is_not_an_object(tmp_path):
    folder = write_run(tmp_path, "study", "run")
    (folder / "run.json").write_text("[1, 2]")
    [error] = read_runs(tmp_path)["error"]
    assert error == f"{folder / 'run.json'}: expected a JSON object, got list"


def test_browser_state_shows_the_selected_report_and_error(reports):
    browser = ReportBrowser(reports_dir=reports, files_url="./files")
    assert "Select a run" in browser.details()

    browser.select(0)
    assert browser.selected == "study/20260102T000000Z-bbbbbb"
    details = browser.details()
    assert 'src="./files/study/20260102T000000Z-bbbbbb/report.html"' in details
    assert "window 500 too long" in details

    browser.select(2)
    assert "not valid JSON" in browser.details()
    assert "<iframe" not in browser.details()


def test_reload_reads_new_runs_and_clears_the_selection(reports):
    browser = ReportBrowser(reports_dir=reports)
    browser.select(0)
    write_run(reports, "study", "20260104T000000Z-dddddd", started="2026-01-04")

    browser.param.trigger("reload")

    assert browser.runs["run_id"].iloc[0] == "20260104T000000Z-dddddd"
    assert len(browser.runs) == 4
    assert browser.selected == ""


# Browser -----------------------------------------------------------------------------


def open_reports(open_page, dashboard_url, **size):
    opened = open_page(f"{dashboard_url}/reports", **size)
    opened.page.locator(ROWS).first.wait_for(timeout=20_000)
    return opened


def test_report_page_lists_the_runs(dashboard_url, dashboard_reports, open_page):
    opened = open_reports(open_page, dashboard_url)
    # The explorer's tests may have added a tear-sheet run to the same folder.
    on_disk = sorted(
        path.parent.name for path in dashboard_reports.glob("*/*/run.json")
    )
    texts = opened.page.locator(ROWS).all_inner_texts()
    assert [run for run in on_disk if any(run in text for text in texts)] == on_disk
    assert len(texts) == len(on_disk)
    averages = [text for text in texts if "moving_average" in text]
    assert sorted("failed" in text for text in averages) == [False, False, True]
    opened.screenshot("report-browser")
    assert opened.errors == []
    assert opened.blocked == []


def test_report_header_filter_narrows_the_table(dashboard_url, open_page):
    opened = open_reports(open_page, dashboard_url)
    page = opened.page
    page.locator(
        '.tabulator-col[tabulator-field="parameters"] input'
    ).press_sequentially("window=20")
    rows = page.locator(ROWS)
    expect(rows).to_have_count(1)
    assert "window=20" in rows.first.inner_text()


def test_selecting_a_run_shows_its_report(dashboard_url, open_page):
    opened = open_reports(open_page, dashboard_url)
    page = opened.page
    page.locator(ROWS, has_text="window=20").click()
    frame = page.frame_locator("iframe.nf-report")
    frame.locator("body").get_by_text("last average").first.wait_for(timeout=20_000)
    assert "last average" in frame.locator("body").inner_text()
    assert page.locator(".nf-run-error").count() == 0
    opened.screenshot("report-browser-selected")
    assert opened.errors == []
    assert opened.blocked == []


def test_selecting_a_failed_run_shows_its_error(dashboard_url, open_page):
    opened = open_reports(open_page, dashboard_url)
    page = opened.page
    page.locator(ROWS, has_text="failed").click()
    error = page.locator(".nf-run-error")
    error.wait_for(timeout=10_000)
    assert "window 500 too long" in error.inner_text()


@pytest.mark.parametrize("theme", ["default", "dark"])
def test_report_page_follows_the_theme(dashboard_url, open_page, theme):
    opened = open_page(f"{dashboard_url}/reports?theme={theme}")
    opened.page.locator(ROWS).first.wait_for(timeout=20_000)
    background = opened.page.evaluate("getComputedStyle(document.body).backgroundColor")
    red, green, blue = (int(v) for v in background[4:-1].split(",")[:3])
    brightness = (red + green + blue) / 3
    assert brightness < 80 if theme == "dark" else brightness > 180, background


def test_report_page_fits_a_phone(dashboard_url, open_page):
    opened = open_reports(open_page, dashboard_url, width=PHONE, height=844)
    opened.page.locator(ROWS, has_text="window=20").click()
    opened.page.frame_locator("iframe.nf-report").locator("body").wait_for()
    width = opened.page.evaluate("document.documentElement.scrollWidth")
    opened.screenshot("report-browser-phone")
    assert width <= PHONE
    assert opened.errors == []
