"""A local stand-in for data.earthquake.cn's speed-report query, answering from the bundled list.

Not a recording: the CENC catalogue query was never recorded for this project. The page layout is
the one the public scraper behind data/cenc-lhasa-300km-2024-11-25-2025-11-25.csv parses (GitHub
maple-red/Crawlweb, earthquake_crawler_v2.py: table #earthquake_subao_guid_catalog_data, cells
[selector, 序号, 发震时间, 经度, 纬度, 深度, 震级, 位置, 类型], pager "共 N 页", 20 rows a page);
the rows are the real ones of catalogs/scenarios/cenc-lhasa-300km-2015-2025.csv, written as the
service writes them (month unpadded, as data/README.md reports of that scraper's output).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from datetime import datetime
from html import escape

from aiohttp import web

from tests.seqdata import SCENARIO

PAGE_ROWS = 20


def scenario_rows() -> list[dict[str, str]]:
    with SCENARIO.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def unpadded(bjt: str) -> str:
    """``2025-01-06 00:51:18`` as the service writes it: ``2025-1-06 00:51:18``."""
    when = datetime.fromisoformat(bjt)
    return f"{when.year}-{when.month}-{when.day:02d} {when:%H:%M:%S}"


def page_html(rows: list[dict[str, str]], page: int, pages: int) -> str:
    """One response page: the data table and the pager."""
    body = "".join(
        "<tr><td><input type='checkbox'></td>"
        f"<td>{n}</td><td>{unpadded(r['time_bjt'])}</td><td>{r['longitude']}</td>"
        f"<td>{r['latitude']}</td><td>{r['depth_km']}</td><td>{r['magnitude']}</td>"
        f"<td>{escape(r['location_c'])}</td><td>{escape(r['event_type'])}</td></tr>\n"
        for n, r in enumerate(rows, start=(page - 1) * PAGE_ROWS + 1))
    return ("<div><table id='earthquake_subao_guid_catalog_data' class='cls-data-table'>\n"
            "<tr><th></th><th>序号</th><th>发震日期（北京时间）</th><th>经度(°)</th><th>纬度(°)</th>"
            "<th>震源深度(Km)</th><th>震级(M)</th><th>震中位置</th><th>事件类型</th></tr>\n"
            f"{body}</table>\n<span class='cls-navigate-info'>第 {page} 页 共 {pages} 页</span>"
            "</div>")


@dataclass
class FakeSubao:
    """Answers the form query from the scenario rows; records every form it was sent."""

    forms: list[dict[str, str]] = field(default_factory=list)
    fail_with: int | None = None

    async def handle(self, request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        self.forms.append(form)
        if self.fail_with is not None:
            return web.Response(status=self.fail_with, text="busy")
        beg, end = form["begtime"], form["endtime"]
        rows = [r for r in scenario_rows()
                if beg <= r["time_bjt"][:10] <= end
                and float(r["magnitude"]) >= float(form["minM"])
                and float(form["minLat"]) <= float(r["latitude"]) <= float(form["maxLat"])
                and float(form["minLon"]) <= float(r["longitude"]) <= float(form["maxLon"])]
        rows.sort(key=lambda r: r["time_bjt"], reverse=True)  # newest first, as the site lists
        pages = max(1, -(-len(rows) // PAGE_ROWS))
        page = int(form["catalog_PAGENO"])
        chunk = rows[(page - 1) * PAGE_ROWS: page * PAGE_ROWS]
        return web.Response(text=page_html(chunk, page, pages), content_type="text/html")

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/datashare/report.shtml", self.handle)
        return app
