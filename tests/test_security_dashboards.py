"""Agent names and attributes that carry HTML, JavaScript or markdown render as text in the dashboards.

Telemetry is written by programs nobody here controls, so a service may call itself
`<img src=x onerror=alert(1)>` and an agent `**bold**[x](javascript:alert(2))`. A real server holds
such spans (priced, with the findings they trigger), `muster dashboard` serves the pages, and real
Chromium opens each: no image or script is injected, no `javascript:` link or markdown formatting
appears, no dialog ever opens, and the hostile names are shown literally.
"""

from __future__ import annotations

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests import test_dashboards_browser as browser
from tests.conftest import start_server
from tests.dashboards_seed import admin_token, api
from tests.payloads import kv, trace_request
from tests.test_dashboards_browser import open_page, settled

pytestmark = browser.pytestmark  # Debian's chromium, as the other browser tests
dashboard = browser.dashboard  # `muster dashboard` beside this module's `seeded` server
page = browser.page  # a fresh headless Chromium page

IMG = "<img src=x onerror=alert(1)>"
MARKDOWN = "**bold**[x](javascript:alert(2))"
SCRIPT = "<script>alert(3)</script>"
PAGES = ["Overview", "Spend", "Inventory", "Policy", "Traces", "Alerts", "Registry"]


def hostile_request() -> ExportTraceServiceRequest:
    request = trace_request(4, service=IMG)
    resource = request.resource_spans[0].resource
    resource.attributes.extend([kv("service.namespace", MARKDOWN)])
    for span in request.resource_spans[0].scope_spans[0].spans:
        span.name = SCRIPT
        span.attributes.extend([kv("gen_ai.agent.name", MARKDOWN), kv("gen_ai.tool.name", SCRIPT)])
    return request


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    server = start_server(
        tmp_path_factory.mktemp("hostile") / "data", decode_workers=0, jobs_interval_seconds=0
    )
    with grpc.insecure_channel(server.grpc_endpoint) as channel:
        export = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")
        export(hostile_request().SerializeToString(), timeout=30)
    assert api(server, "POST", "/api/v1/jobs/run").status_code == 200
    assert api(server, "POST", "/api/v1/findings/run").status_code == 200
    yield server
    server.stop()


def injected(tab) -> list[str]:
    """What the hostile text would have become, had it been rendered as HTML or markdown."""
    found = []
    for selector in ('img[src="x"]', "img[onerror]", 'a[href^="javascript:"]', "script:text('alert(3)')"):
        if tab.locator(selector).count():
            found.append(selector)
    if tab.locator("strong", has_text="bold").count():
        found.append("markdown bold")
    return found


def test_hostile_names_and_attributes_render_as_text_on_every_page(seeded, dashboard, page):
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(dashboard)
    page.get_by_label("API token").fill(admin_token(seeded))
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Overview", exact=True).wait_for(timeout=120_000)
    settled(page)
    shown = ""
    for title in PAGES:
        open_page(page, title)
        assert not page.locator('[data-testid="stException"]').count(), title
        assert injected(page) == [], title
        shown += page.locator("body").inner_text() + "\n"
        for combobox in page.get_by_role("combobox").all():
            shown += combobox.input_value() + "\n"
    assert dialogs == []
    assert IMG in shown  # shown literally, e.g. as the unregistered identity to register
