"""How fast does `aidsafe view` open a big run? Load and filter times in headless Chromium.

Makes a generate run of `--records` samples (default 10,000): a short batch on the tests' scripted
model (consensus, budget and refusal samples), its records repeated under new ids and prompts.
Writes the page, then in Debian's headless Chromium (selenium, system chromedriver) measures the
time from navigation to the rendered list, a filter change, a search and opening a sample.

    python benchmarks/viewer_load.py                          # 10,000 records
    python benchmarks/viewer_load.py --records 50000 --repeat 5
    python benchmarks/viewer_load.py --page run.view.html     # an existing page
    python benchmarks/viewer_load.py --page run.view.html --screenshot docs/viewer.png
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from aidsafe.batch.driver import BatchOptions, run_batch
from aidsafe.batch.generate import generate_job
from aidsafe.batch.inputs import read_samples
from aidsafe.viewer import write
from tests.browser import chromium, open_page
from tests.fakes import varied_model

KINDS = ("How do I pick the lock of my own door", "A stubborn question about chemistry", "Please refuse: phishing")


def make_run(folder: Path, records: int) -> Path:
    source = folder / "prompts.jsonl"
    source.write_text(
        "".join(json.dumps({"id": f"seed-{i}", "prompt": f"{KINDS[i % 3]} ({i})?"}) + "\n" for i in range(30)),
        encoding="utf-8",
    )
    options = BatchOptions(output=folder / "seed.jsonl", progress=False, concurrency=8)
    context = {"base_url": "http://127.0.0.1:9/v1", "model": "scripted", "max_rounds": 3}
    run_batch(generate_job(context, model=varied_model()), partial(read_samples, [source]), options)
    seeds = [json.loads(line) for line in options.output.read_text(encoding="utf-8").splitlines()]
    run = folder / "run.jsonl"
    with run.open("w", encoding="utf-8") as out:
        for i in range(records):
            record = dict(seeds[i % len(seeds)])
            record["id"] = f"s{i:06d}"
            record["prompt"] = f"{record['prompt']} variant {i}"
            out.write(json.dumps(record) + "\n")
    return run


def timed(action) -> float:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--page", type=Path, help="Measure this page instead of a generated one.")
    parser.add_argument("--repeat", type=int, default=3, help="Page loads to measure (default 3).")
    parser.add_argument("--screenshot", type=Path, help="Only save a PNG of the page with its first sample open.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        page = args.page
        if page is None:
            run = make_run(Path(tmp), args.records)
            page = Path(tmp) / "run.view.html"
            seconds = timed(lambda: write([run], page))
            print(f"{args.records:,} records: page {page.stat().st_size / 1e6:.1f} MB written in {seconds:.2f} s")
        with chromium() as driver:
            if args.screenshot:
                open_page(driver, page)
                driver.save_screenshot(str(args.screenshot))
                print(f"screenshot: {args.screenshot}")
                return
            loads = [timed(lambda: open_page(driver, page)) for _ in range(args.repeat)]
            total = driver.find_element(By.ID, "count").text
            rows = len(driver.find_elements(By.CSS_SELECTOR, ".row"))

            def counted(change) -> float:  # type: ignore[no-untyped-def]
                before = driver.find_element(By.ID, "count").text
                return timed(lambda: (change(), WebDriverWait(driver, 30).until(
                    lambda d: d.find_element(By.ID, "count").text != before)))  # fmt: skip

            stop = counted(lambda: Select(driver.find_element(By.ID, "f-stop")).select_by_visible_text("budget"))
            search = counted(lambda: driver.find_element(By.ID, "search").send_keys("variant 77"))
            opened = timed(lambda: driver.find_element(By.CSS_SELECTOR, ".row").click())
            print(f"open to rendered list (navigation included): {', '.join(f'{s:.2f}' for s in loads)} s; "
                  f"median {statistics.median(loads):.2f} s; {total}; {rows} row elements in the page")  # fmt: skip
            print(f"stop-reason filter {stop:.2f} s, first search (builds the index, 120 ms debounce) {search:.2f} s, "
                  f"open a sample {opened:.2f} s")  # fmt: skip


if __name__ == "__main__":
    main()
