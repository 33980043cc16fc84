"""Google Drive's large-file step: instead of the file, Drive answers with a page ("can't scan this file for
viruses") that the browser confirms. Today the page holds a form (action + hidden ``id``/``confirm``/``uuid``
fields); older pages held a link with ``confirm=TOKEN`` and set a ``download_warning*`` cookie with the token."""
from __future__ import annotations

from html.parser import HTMLParser
from typing import Dict, List, Mapping, Optional, Tuple
from urllib.parse import parse_qsl, urljoin, urlsplit


class _ConfirmPage(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: List[Tuple[str, Dict[str, str]]] = []
        self.links: List[str] = []
        self._form: Optional[Dict[str, str]] = None

    def handle_starttag(self, tag: str, attrs: List[Tuple[str, Optional[str]]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self._form = {}
            self.forms.append((a.get("action", ""), self._form))
        elif tag == "input" and self._form is not None and a.get("name"):
            self._form[a["name"]] = a.get("value", "")
        elif tag == "a" and "confirm=" in a.get("href", ""):
            self.links.append(a["href"])

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._form = None


def confirmation_request(page: str, page_url: str, cookies: Mapping[str, str]) -> Optional[Tuple[str, Dict]]:
    """(url, query parameters) that fetch the file behind a Drive confirmation page, or None if it is not one."""
    parser = _ConfirmPage()
    parser.feed(page)
    for action, fields in parser.forms:
        if "confirm" in fields:
            return urljoin(page_url, action or page_url), fields
    if parser.links:  # the parser has already unescaped &amp;
        return urljoin(page_url, parser.links[0]), {}
    token = next((v for k, v in cookies.items() if k.startswith("download_warning")), None)
    if token:
        parts = urlsplit(page_url)
        params = dict(parse_qsl(parts.query))
        params["confirm"] = token
        return parts._replace(query="").geturl(), params
    return None
