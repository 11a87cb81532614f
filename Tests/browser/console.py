"""Drives the node's web console in headless Chromium (Debian's package) through Playwright.

Usage: console.py BASE_URL SCREENSHOT_DIR TX_HASH BATCH_ID
Prints one JSON object of what it saw; exits 1 (with the reason on stderr) when a check fails.
"""
import json
import sys

from playwright.sync_api import sync_playwright

base, shots, tx, batch = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
seen = {}


def check(ok, what):
    if not ok:
        print("console check failed: " + what, file=sys.stderr)
        sys.exit(1)


with sync_playwright() as p:
    browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
    for name, viewport in [("desktop", {"width": 1280, "height": 900}), ("phone", {"width": 390, "height": 844})]:
        page = browser.new_page(viewport=viewport)
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

        # Explorer: the latest blocks, and a new one arrives without a reload.
        page.goto(base + "/console/explorer")
        check(page.locator("nav a[aria-current=page]").inner_text() == "Explorer", "the explorer is the current page in the navigation bar")
        first = int(page.locator("#blocks tbody tr").first.get_attribute("data-height"))
        page.evaluate("window.__stillHere = true")
        page.wait_for_function("h => Number(document.querySelector('#blocks tbody tr').dataset.height) > h", arg=first, timeout=20000)
        newest = int(page.locator("#blocks tbody tr").first.get_attribute("data-height"))
        # No block is missed between the page's rendering and the stream: heights are consecutive.
        heights = [int(h) for h in page.eval_on_selector_all("#blocks tbody tr", "rows => rows.map(r => r.dataset.height)")]
        check(heights == list(range(heights[0], heights[0] - len(heights), -1)), "consecutive heights: " + str(heights[:20]))
        check(page.evaluate("window.__stillHere === true"), "no reload happened")
        check(page.locator("#blocks tbody tr.new").count() >= 1, "the newest rows came over the event stream")
        seen[name + "_explorer"] = {"first": first, "newest": newest}
        # Nothing wider than the screen but the tables' own scrolling boxes.
        check(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"), name + ": the page fits the screen's width")
        page.screenshot(path=f"{shots}/explorer-{name}.png", full_page=True)

        # A block: header, commit signatures, transactions.
        page.goto(f"{base}/console/blocks/{newest}")
        check(page.locator("h1").inner_text() == f"Block {newest}", "the block page's title")
        seen[name + "_block_heading"] = page.locator("h2").first.inner_text()
        page.screenshot(path=f"{shots}/block-{name}.png", full_page=True)

        # Search by transaction hash leads to the transaction, its proof verified in the page.
        page.goto(base + "/console/explorer")
        page.fill("#q", tx)
        page.click("form.search button")
        page.wait_for_url("**/console/tx/**")
        seen[name + "_verdict"] = page.locator("#verdict").inner_text()
        check(page.locator("#verdict").get_attribute("class") == "ok", "the transaction's proof verifies: " + seen[name + "_verdict"])
        page.screenshot(path=f"{shots}/transaction-{name}.png", full_page=True)

        # Consortium: every validator listed with the last block it signed.
        page.goto(base + "/console/consortium")
        seen[name + "_validators"] = page.locator("table tbody tr").count()
        page.screenshot(path=f"{shots}/consortium-{name}.png", full_page=True)

        # Supply chain: a batch's journey, its cold-chain chart with the excursion marked.
        page.goto(base + "/console/supply-chain")
        page.fill("#batch", batch)
        page.click("form.inline button")
        page.wait_for_selector("#journey")
        seen[name + "_journey"] = page.locator("#journey li").count()
        seen[name + "_excursion_points"] = page.locator("svg#cold-chain circle.excursion").count()
        check(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"), name + ": the supply-chain page fits the screen")
        page.screenshot(path=f"{shots}/supply-chain-{name}.png", full_page=True)

        # Hospital: the hospital's assets by status, through the page's own form.
        page.goto(base + "/console/hospital")
        page.fill("#organisation", "org-0")
        page.click("form.inline button")
        page.wait_for_selector("#assets")
        seen[name + "_assets"] = page.locator("#assets tbody tr").count()
        seen[name + "_out_of_service"] = page.locator("#assets tbody tr[data-status=out-of-service]").count()
        check(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"), name + ": the hospital page fits the screen")
        page.screenshot(path=f"{shots}/hospital-{name}.png", full_page=True)

        # Public health: the place × hour grid with the positive test.
        page.click("nav >> text=Public health")
        page.wait_for_selector("svg#outbreak")
        seen[name + "_outbreak_rows"] = page.locator("svg#outbreak text").count()
        check(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"), name + ": the public-health page fits the screen")
        page.screenshot(path=f"{shots}/public-health-{name}.png", full_page=True)
        check(not errors, name + ": no script errors: " + "; ".join(errors))
        page.close()
    browser.close()

print(json.dumps(seen))
