"""The dashboard as an operator uses it, in Debian's Chromium (headless, no way off loopback),
against a `pushgate serve` that delivered Web Push notifications with mixed outcomes to the
fake push service: sign in, read the charts, open a notification and see each device's
outcome, replay a dead letter, sign out. Screenshots land in PUSHGATE_TEST_ARTIFACTS."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.acceptance.browser import Tab, browser, screenshot, tab
from tests.acceptance.dashboard_site import Site, running_site

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]
__all__ = ["browser", "tab"]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with running_site(tmp_path_factory.mktemp("dashboard")) as started:
        yield started


def sign_in(tab: Tab, site: Site, address: str = "/dashboard/") -> None:
    tab.page.goto(site.url + address)
    tab.page.fill("#key", site.admin_key)
    tab.page.click("#sign-in button[type=submit]")
    tab.page.wait_for_selector("#nav:not([hidden])")


def points(tab: Tab, panel: str) -> dict[str, list[float]]:
    """What a chart drew: each data point's series and value, read from the SVG."""
    tab.page.wait_for_selector(f"{panel}:not([aria-busy])")
    drawn: list[list[Any]] = tab.page.eval_on_selector_all(
        f"{panel} svg .point",
        "els => els.map(e => [e.dataset.series, Number(e.dataset.value)])",
    )
    by_series: dict[str, list[float]] = {}
    for series, value in drawn:
        by_series.setdefault(series, []).append(value)
    return by_series


def test_without_a_key_nothing_is_read_and_sign_in_is_asked(tab: Tab, site: Site) -> None:
    # When someone opens the overview, and a deep link, with no key kept
    tab.page.goto(f"{site.url}/dashboard/")
    tab.page.wait_for_selector("#sign-in")
    tab.page.goto(f"{site.url}/dashboard/notifications/{site.notifications['mixed']}")
    tab.page.wait_for_selector("#sign-in")

    # Then they see the sign-in form, and the page asked the API for nothing
    assert tab.page.is_hidden("#nav")
    assert tab.api_calls() == []
    assert tab.blocked == []


def test_a_bad_key_stays_on_sign_in_with_an_error(tab: Tab, site: Site) -> None:
    tab.page.goto(f"{site.url}/dashboard/")
    # When a key that is no key is given
    tab.page.fill("#key", "pgk_not-a-key-at-all")
    tab.page.click("#sign-in button[type=submit]")

    # Then the form stays, says why, and keeps nothing
    tab.page.wait_for_selector("#sign-in-error .note-error")
    assert "not valid" in tab.page.inner_text("#sign-in-error")
    assert tab.page.is_visible("#sign-in")
    assert tab.page.evaluate("sessionStorage.length") == 0


def test_overview_charts_are_drawn_from_the_deliveries(tab: Tab, site: Site) -> None:
    # Given what the API counts for the last 24 hours
    sign_in(tab, site)
    points_by_outcome = points(tab, "#panel-outcomes")
    totals = site.http.get("/v1/analytics/deliveries", params={"interval": "hour"}).json()["totals"]
    screenshot(tab.page, "dashboard-overview")

    # Then the outcome bars add up to the API's counts of the deliveries the test made
    counted = {name: n for name, n in totals["by_outcome"].items() if n}
    assert {name: sum(values) for name, values in points_by_outcome.items()} == counted
    assert counted.get("sent", 0) >= 4
    assert counted.get("invalid", 0) >= 1
    assert counted.get("rejected", 0) >= 1
    # the success rate is drawn between 0 and 1, and latency has each percentile
    success = points(tab, "#panel-success")["success rate"]
    assert success
    assert all(0 < rate < 1 for rate in success)
    latency = points(tab, "#panel-latency")
    assert {"p50", "p95", "p99"} <= latency.keys()
    assert all(p50 <= p99 for p50, p99 in zip(latency["p50"], latency["p99"], strict=True))
    assert tab.page.inner_text("#stat-total .stat-value") == f"{totals['total']:,}"


def test_overview_shows_devices_per_platform(tab: Tab, site: Site) -> None:
    sign_in(tab, site)
    drawn = points(tab, "#panel-devices")
    active = site.http.get("/v1/analytics/devices").json()["active"]
    # Five of the six devices are active: one was invalidated by its push service's 410.
    assert drawn["webpush"] == [active["webpush"]]
    assert active["webpush"] == 5


def test_overview_shows_queues_and_circuits(tab: Tab, site: Site) -> None:
    sign_in(tab, site)
    queues = site.http.get("/v1/queues").json()["queues"]
    drawn = points(tab, "#panel-queues")
    assert {name: values[0] for name, values in drawn.items()} == {
        q["name"]: q["depth"] for q in queues
    }
    tab.page.wait_for_selector("#panel-circuits:not([aria-busy])")
    assert "not available" not in tab.page.inner_text("#panel-circuits").lower()


def test_notification_detail_lists_each_devices_outcome_and_the_providers_answer(
    tab: Tab, site: Site
) -> None:
    mixed = site.notifications["mixed"]
    # Given a search for the notifications of one category
    sign_in(tab, site, "/dashboard/notifications")
    tab.page.fill("input[name=category]", "news")
    tab.page.click("form.filters button[type=submit]")
    tab.page.wait_for_url("**/dashboard/notifications?category=news")
    tab.page.wait_for_selector("#notifications:not([aria-busy])")
    assert tab.page.locator("#notifications tbody tr").count() == 1

    # When its row is opened
    tab.page.click(f'#notifications a[href$="/notifications/{mixed}"]')
    tab.page.wait_for_url(f"**/dashboard/notifications/{mixed}")
    tab.page.wait_for_selector("#deliveries:not([aria-busy])")
    screenshot(tab.page, "dashboard-notification-detail")

    # Then each device's outcome is there with what the push service answered
    assert "partially_failed" in tab.page.inner_text("#notification")
    assert tab.page.locator("#deliveries tr.delivery-sent").count() == 3
    for row in tab.page.locator("#deliveries tr.delivery-sent").all():
        assert "201" in row.inner_text()
    invalid = tab.page.inner_text("#deliveries tr.delivery-invalid")
    assert "410" in invalid
    assert "Gone" in invalid
    rejected = tab.page.inner_text("#deliveries tr.delivery-rejected")
    assert "400" in rejected
    assert "payload not accepted" in rejected

    # And the address is a deep link: loaded afresh, the same page comes back
    tab.page.reload()
    tab.page.wait_for_selector("#deliveries tr.delivery-invalid")
    assert tab.blocked == []


def test_every_section_loads_under_the_policy_without_a_violation(tab: Tab, site: Site) -> None:
    # Given the dashboard's own answer carries the page headers
    response = tab.page.goto(f"{site.url}/dashboard/")
    assert response is not None
    headers = response.headers
    assert "script-src 'self'" in headers["content-security-policy"]
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY"
    tab.page.fill("#key", site.admin_key)
    tab.page.click("#sign-in button[type=submit]")

    # When every section is opened in turn
    for section in (
        "overview",
        "notifications",
        "devices",
        "templates",
        "webhooks",
        "dead-letters",
    ):
        tab.page.click(f'#nav a[data-section="{section}"]')
        tab.page.wait_for_selector(".panel:not([aria-busy])")
        tab.page.wait_for_load_state("networkidle")
        assert not tab.page.locator(".note-error").count(), tab.page.inner_text("#view")
        if section == "devices":  # the device invalidated by a 410 is not listed by default
            assert tab.page.locator("#devices tbody tr").count() == 5

    # Then nothing was refused by the policy, nothing failed, nothing left loopback
    assert tab.csp_violations() == []
    assert [line for line in tab.console if line.startswith("pageerror")] == []
    assert tab.blocked == []
    assert all(call.startswith(site.url) for call in tab.api_calls())


def test_templates_and_webhooks_with_their_recent_attempts(tab: Tab, site: Site) -> None:
    # Given the app's template, on its page
    sign_in(tab, site, "/dashboard/templates")
    tab.page.wait_for_selector("#templates:not([aria-busy])")
    template = tab.page.inner_text("#templates tbody tr")
    assert "order_shipped" in template
    assert "en, fr" in template

    # When the webhooks page opens the webhook's recent attempts
    tab.page.click('#nav a[data-section="webhooks"]')
    webhook_id = site.webhook["id"]
    hook = tab.page.locator(f'article.webhook[data-id="{webhook_id}"]')
    assert site.webhook["url"] in hook.inner_text()
    hook.locator("summary", has_text="Recent attempts").click()
    hook.locator(".attempts table").wait_for()
    screenshot(tab.page, "dashboard-webhooks")

    # Then each device registration is an event there, as the API lists them
    attempts = site.http.get(f"/v1/webhooks/{webhook_id}/deliveries").json()["items"]
    rows = hook.locator(".attempts tbody tr")
    assert rows.count() == len(attempts) == 6
    assert all("device.registered" in row.inner_text() for row in rows.all())


def test_a_refused_key_returns_to_sign_in_and_sign_out_forgets_the_key(
    tab: Tab, site: Site
) -> None:
    # Given a signed-in tab
    sign_in(tab, site, "/dashboard/devices")
    tab.page.wait_for_selector("#devices:not([aria-busy])")

    # When its key stops working (here: replaced by one the server refuses)
    tab.page.evaluate("sessionStorage.setItem('pushgate.dashboard.key', 'pgk_revoked')")
    tab.page.click('#nav a[data-section="templates"]')

    # Then the next call's 401 brings the sign-in page back and forgets the key
    tab.page.wait_for_selector("#sign-in")
    assert "refused" in tab.page.inner_text("#sign-in-error")
    assert tab.page.evaluate("sessionStorage.length") == 0

    # And signing out after signing in again forgets it too
    tab.page.fill("#key", site.admin_key)
    tab.page.click("#sign-in button[type=submit]")
    tab.page.wait_for_selector("#templates")
    tab.page.click("#sign-out")
    tab.page.wait_for_selector("#sign-in")
    assert tab.page.evaluate("sessionStorage.length") == 0


def test_replaying_a_dead_letter_delivers_it(tab: Tab, site: Site) -> None:
    dead = site.notifications["dead"]
    assert [d["status"] for d in site.deliveries(dead)] == ["failed"]
    # Given the dead-letter queue holds the delivery the push service refused twice
    sign_in(tab, site, "/dashboard/dead-letters")
    tab.page.wait_for_selector("#dead-letters:not([aria-busy])")
    row = tab.page.locator("tr.dead-letter", has=tab.page.locator(f'a[href$="{dead}"]'))
    assert row.count() == 1, tab.page.inner_text("#dead-letters")
    assert "webpush" in row.inner_text()

    # When it is replayed from the dashboard
    row.locator("button.replay").click()
    tab.page.wait_for_selector(".status-line .note-ok")
    assert "Replayed 1 message" in tab.page.inner_text(".status-line")

    # Then it is delivered this time, and its page shows so
    statuses = [d["status"] for d in site.deliveries(dead)]
    for _ in range(150):
        if statuses == ["sent"]:
            break
        tab.page.wait_for_timeout(200)
        statuses = [d["status"] for d in site.deliveries(dead)]
    assert statuses == ["sent"]
    later = site.subscriptions["later"]
    assert len(site.push.call(lambda: site.push.fake.received_for(later))) == 1
    tab.page.goto(f"{site.url}/dashboard/notifications/{dead}")
    tab.page.wait_for_selector("#deliveries tr.delivery-sent")
    screenshot(tab.page, "dashboard-replayed")
