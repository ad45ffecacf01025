"""The Decide page in a real browser: one application from the generated form, its decision
card and field errors, and a file of applications (row errors, paged table, downloads)."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pandas as pd
import pytest
from playwright.sync_api import Page, expect

from creditops.data.datasets import load_builtin
from creditops.store.predlog import PredictionLog
from ui_helpers import API_HEADERS, READER_KEY, Dashboard, application, log_in


def _field(page: Page, name: str) -> Any:
    # Optional fields' labels end in "(optional)": the label still starts with the column.
    return page.get_by_label(re.compile(rf"^{re.escape(name)}( \(optional\))?$"))


def _fill(page: Page, values: dict[str, Any]) -> None:
    for name, value in values.items():
        field = _field(page, name)
        text = "" if value is None else str(value)
        if field.evaluate("e => e.tagName") == "SELECT":
            field.select_option(text)
        else:
            field.fill(text)


def _applications(rows: int) -> pd.DataFrame:
    frame, _ = load_builtin("credit_data")
    return frame.head(rows)  # with the id and the outcome column, as files often are


def _upload(page: Page, name: str, body: bytes) -> None:
    page.get_by_label("Applications file (CSV or Parquet)").set_input_files(
        {"name": name, "mimeType": "text/csv", "buffer": body}
    )


def _logged(dashboard: Dashboard, prediction_id: str) -> bool:
    with PredictionLog(dashboard.settings.resolved_database_url) as log:
        return log.get(prediction_id) is not None


def test_deciding_one_application_shows_its_card_with_reasons_and_waterfall(
    page: Page, dashboard: Dashboard
) -> None:
    log_in(page, READER_KEY, start="/ui/decide")
    expect(page.get_by_role("heading", name="Decide", exact=True)).to_be_visible()
    protected = page.get_by_role("group", name="For fairness monitoring only")
    expect(protected.get_by_label(re.compile(r"^Age"))).to_be_visible()
    expect(_field(page, "Income")).to_have_accessible_name("Income (optional)")
    expect(_field(page, "Amount")).to_have_accessible_description(
        re.compile(r"of at least 0; training saw 100 to 5,000 \(outside it: referred\)")
    )
    _fill(page, application(2))
    page.get_by_role("button", name="Decide", exact=True).click()

    card = page.get_by_role("article", name=re.compile(r"^Decision: decline$"))
    expect(card).to_be_visible()
    api = httpx.post(
        f"{dashboard.url}/explain", headers=API_HEADERS, json=application(2), timeout=60
    ).json()
    expect(card).to_contain_text(f"{api['probability_of_default']:.1%}")
    reasons = card.locator("ol.reasons li")
    expect(reasons.first).to_be_visible()
    assert reasons.count() == len(api["reasons"])
    expect(reasons.first).to_contain_text(api["reasons"][0]["text"])
    waterfall = card.get_by_role("img", name="SHAP waterfall of this application")
    expect(waterfall.locator(".main-svg").first).to_be_visible()  # Plotly drew it
    expect(waterfall).to_contain_text("this applicant")
    lime = card.get_by_role("table").locator("tbody tr")
    expect(lime.first).to_contain_text(re.compile(r"[+-]\d+\.\d pp"))
    expect(card.locator(".counterfactual")).to_contain_text(re.compile(r"from [\d,.]+ to [\d,.]+"))
    prediction_id = card.locator("code").inner_text()
    assert _logged(dashboard, prediction_id)  # a real decision, logged like the API's


def test_a_bad_value_shows_the_apis_error_next_to_its_field(
    page: Page, dashboard: Dashboard
) -> None:
    log_in(page, start="/ui/decide")
    _fill(page, application(3))
    _field(page, "Amount").fill("-5")
    # The browser's number input would keep text out; the server must refuse it too.
    _field(page, "Seniority").evaluate("e => { e.type = 'text'; }")
    _field(page, "Seniority").fill("twelve")
    with PredictionLog(dashboard.settings.resolved_database_url) as log:
        before = log.count()
    page.get_by_role("button", name="Decide", exact=True).click()

    expect(page.get_by_role("alert")).to_contain_text("Nothing was decided")
    api = httpx.post(
        f"{dashboard.url}/predict",
        headers=API_HEADERS,
        json={**application(3), "Amount": -5},
        timeout=60,
    ).json()
    message = next(e["problem"] for e in api["errors"] if e["field"] == "Amount")
    amount = _field(page, "Amount")
    expect(amount).to_have_attribute("aria-invalid", "true")
    expect(amount).to_have_accessible_description(re.compile(re.escape(message)))
    expect(page.locator(".field", has=amount).locator(".field-error")).to_have_text(message)
    seniority = _field(page, "Seniority")
    expect(seniority).to_have_attribute("aria-invalid", "true")
    expect(seniority).to_have_accessible_description(re.compile("must be a finite number"))
    expect(_field(page, "Time")).not_to_have_attribute("aria-invalid", "true")
    expect(page.get_by_role("article")).to_have_count(0)  # no decision card
    with PredictionLog(dashboard.settings.resolved_database_url) as log:
        assert log.count() == before  # nothing was decided


def test_a_batch_with_one_bad_row_names_its_row_and_column(page: Page) -> None:
    log_in(page, start="/ui/decide")
    _upload(page, "notes.csv", "Seniority,Home\n1,caf\xe9\n".encode("latin-1"))
    page.get_by_role("button", name="Decide the file").click()
    expect(page.get_by_role("alert")).to_contain_text("not valid UTF-8")
    _upload(page, "empty.csv", b"")
    page.get_by_role("button", name="Decide the file").click()
    expect(page.get_by_role("alert")).to_contain_text("the file is empty")

    broken = _applications(40).astype({"Income": object})
    broken.loc[broken.index[7], "Income"] = "lots"
    _upload(page, "applications.csv", broken.to_csv(index=False).encode())
    page.get_by_role("button", name="Decide the file").click()
    expect(page.get_by_role("alert")).to_contain_text("1 invalid value; nothing was decided")
    problems = page.get_by_role("table", name=re.compile("Invalid values"))
    row = problems.locator("tbody tr")
    expect(row).to_have_count(1)
    expect(row.locator("td")).to_have_text(["8", "Income", "must be a finite number"])
    expect(page.get_by_text("lots")).to_have_count(0)  # the value is never echoed


def test_a_good_batch_shows_a_paged_table_and_downloads(page: Page, dashboard: Dashboard) -> None:
    log_in(page, start="/ui/decide")
    applications = _applications(60)
    _upload(page, "applications.csv", applications.to_csv(index=False).encode())
    page.get_by_role("button", name="Decide the file").click()

    table = page.locator("#batch-table table")
    expect(table.locator("caption")).to_have_text("Decisions 1 to 25 of 60")
    expect(table.locator("tbody tr")).to_have_count(25)
    mix = page.get_by_role("img", name="Decisions by outcome")
    expect(mix.locator(".main-svg").first).to_be_visible()
    expect(page.locator("#batch .js-plotly-plot")).to_have_count(2)  # both charts drawn
    page.get_by_role("link", name="Next").click()
    expect(table.locator("caption")).to_have_text("Decisions 26 to 50 of 60")

    with page.expect_download() as download:
        page.get_by_role("link", name="CSV", exact=True).click()
    decisions = pd.read_csv(download.value.path())
    assert len(decisions) == 60
    assert decisions["applicant_id"].tolist() == applications["applicant_id"].tolist()
    assert decisions["decision"].isin(["approve", "refer", "decline"]).all()
    assert _logged(dashboard, decisions["prediction_id"].iloc[0])
    with page.expect_download() as download:
        page.get_by_role("link", name="Parquet", exact=True).click()
    parquet = pd.read_parquet(download.value.path())
    assert parquet["prediction_id"].tolist() == decisions["prediction_id"].tolist()

    page.get_by_label(re.compile("^Log the decisions")).uncheck()  # a what-if run
    _upload(page, "what-if.csv", applications.head(5).to_csv(index=False).encode())
    page.get_by_role("button", name="Decide the file").click()
    expect(page.get_by_role("status")).to_contain_text("a what-if run: not logged")
    first = page.locator("#batch-table code.id").first.inner_text()
    assert not _logged(dashboard, first)


def test_a_file_over_the_size_limit_is_refused(
    page: Page, dashboard: Dashboard, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dashboard.settings, "max_batch_body_bytes", 4096)
    log_in(page, start="/ui/decide")
    big = _applications(200).to_csv(index=False).encode()
    _upload(page, "big.csv", big)  # refused in the page, before it is sent
    expect(page.locator("#batch-size-error")).to_contain_text("larger than the 4 KiB (4,096 bytes)")
    sent: list[str] = []
    page.on("request", lambda r: sent.append(r.url) if r.url.endswith("/batch") else None)
    page.get_by_role("button", name="Decide the file").click()
    page.wait_for_timeout(500)
    assert not sent

    csrf = page.locator("#batch input[name=csrf_token]").input_value()
    refused = page.request.post(  # the server refuses it too
        f"{dashboard.url}/ui/decide/batch",
        multipart={
            "csrf_token": csrf,
            "file": {"name": "big.csv", "mimeType": "text/csv", "buffer": big},
        },
    )
    assert refused.status == 413
    assert "larger than the 4 KiB (4,096 bytes)" in refused.text()


@pytest.mark.parametrize("page", [390], indirect=True)
def test_the_form_fits_a_phone(page: Page) -> None:
    log_in(page, start="/ui/decide")
    expect(page.get_by_role("button", name="Decide", exact=True)).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
