"""Reading a dashboard page the way a test checks it: which plots were drawn and with how many
points, which empty-state sentences stand in for the rest, how many alerts the table lists, and
whether anything would be fetched from elsewhere. Used on ``render``'s output and on the DOM a
headless browser dumps."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser

PLOTS = {"decisions-over-time", "score-distribution", "drift", "performance", "comparison"}
# Elements that load something by themselves; the page must need none of them.
FETCHING_TAGS = {"script", "link", "img", "iframe", "object", "embed", "audio", "video", "source"}


@dataclass
class Page:
    plots: dict[str, int] = field(default_factory=dict)
    empty: dict[str, str] = field(default_factory=dict)
    alert_rows: int = 0
    tiles: dict[str, str] = field(default_factory=dict)
    fetches: list[str] = field(default_factory=list)
    styles: str = ""


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.page = Page()
        self._empty: str | None = None
        self._tile: str | None = None
        self._in_alerts = False
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag in FETCHING_TAGS:
            self.page.fetches.append(tag)
        for name in ("src", "href", "xlink:href"):
            value = attributes.get(name)
            if value is not None and not value.startswith(("#", "data:")):
                self.page.fetches.append(f"{tag} {name}={value}")
        plot = attributes.get("data-plot")
        if tag == "figure" and plot:
            self.page.plots[plot] = int(attributes.get("data-points") or 0)
        if tag == "p" and "empty" in (attributes.get("class") or "").split():
            self._empty = plot or attributes.get("data-table") or "?"
            self.page.empty[self._empty] = ""
        if tag == "div" and attributes.get("data-tile"):
            self._tile = attributes["data-tile"]
            self.page.tiles[self._tile] = ""
        if tag == "table":
            self._in_alerts = "alerts" in (attributes.get("class") or "").split()
        if tag == "tr" and self._in_alerts and "data-transaction" in attributes:
            self.page.alert_rows += 1
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        if tag == "p":
            self._empty = None
        if tag == "div":
            self._tile = None
        if tag == "table":
            self._in_alerts = False
        if tag == "style":
            self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._empty is not None:
            self.page.empty[self._empty] += data
        if self._tile is not None:
            self.page.tiles[self._tile] += data
        if self._in_style:
            self.page.styles += data


def read_page(html: str) -> Page:
    reader = _Reader()
    reader.feed(html)
    reader.close()
    page = reader.page
    page.empty = {key: " ".join(text.split()) for key, text in page.empty.items()}
    page.tiles = {key: " ".join(text.split()) for key, text in page.tiles.items()}
    return page


def assert_self_contained(page: Page) -> None:
    """Nothing that a browser would fetch: no scripts, stylesheets, images, fonts or imports."""
    assert page.fetches == []
    assert "@import" not in page.styles
    assert "url(" not in page.styles
