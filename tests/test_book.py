"""The book (vlmid.harness.book): its link rewriting on a small repository made here, then the whole site,
built from the committed results once for this module and opened page by page in headless Chromium.

The browser tests skip only when Debian's chromium or chromium-driver is absent (run_all.sh installs both
when it runs as root)."""
from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import time
import urllib.error
import urllib.request
from functools import partial
from html.parser import HTMLParser
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urldefrag

import pytest

from vlmid.harness import book
from vlmid.harness.report import README_END, README_START

# myst-nb and the book theme call Sphinx APIs that Sphinx 11 will remove (Python warnings, not Sphinx warnings)
pytestmark = pytest.mark.filterwarnings("ignore:.*is deprecated. Check CHANGES for Sphinx API modifications")

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")


# ---- the link rewriting, on a repository made here ------------------------------------------------
@pytest.fixture
def repo(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "README.md").write_text("# Docs\n")
    (tmp_path / "docs" / "methods.md").write_text("# Methods\n\n## 1. Intrinsic dimension (TwoNN)\n\n"
                                                  "## 2. ID-guided VLM pruning\n")
    (tmp_path / "results" / "02_prune").mkdir(parents=True)
    (tmp_path / "results" / "02_prune" / "a.csv").write_text("x\n1\n")
    (tmp_path / "results" / "executed").mkdir()
    (tmp_path / "results" / "executed" / "02_prune.ipynb").write_text("{}")
    (tmp_path / "README.md").write_text("# r\n")
    return tmp_path


def _rewrite(repo, text, source, site=None):
    pages = book.site_pages(repo)
    return book.rewrite(text, source, site or pages[source], pages, book.doc_sections(repo), repo)


def test_the_pages_of_the_site_are_the_readme_docs_and_executed_notebooks(repo):
    pages = book.site_pages(repo)
    assert pages == {"README.md": "index.md", "docs/README.md": "docs/README.md", "docs/methods.md": "docs/methods.md",
                     "notebooks/02_prune.ipynb": "notebooks/02_prune.ipynb",
                     "results/executed/02_prune.ipynb": "notebooks/02_prune.ipynb"}
    assert book.doc_sections(repo)["docs/methods.md"] == {"1": "1-intrinsic-dimension-twonn",
                                                          "2": "2-id-guided-vlm-pruning"}


def test_links_to_pages_files_and_sections_resolve_inside_the_site(repo):
    text, files = _rewrite(repo, "See [the docs](docs/README.md), [run 02](results/executed/02_prune.ipynb), "
                                 "[a table](results/02_prune/a.csv) and `02_prune`.", "README.md")
    assert text == ("See [the docs](docs/README.md), [run 02](notebooks/02_prune.ipynb), "
                    "[a table](results/02_prune/a.csv) and [`02_prune`](notebooks/02_prune.ipynb).")
    assert files == {"results/02_prune/a.csv"}

    text, files = _rewrite(repo, "As in `docs/methods.md` §2, and docs/methods.md §1; ![f](../results/02_prune/a.csv); "
                                 "`docs/README.md`; [out](https://example.org/x.md); [up](#top)", "notebooks/02_prune.ipynb")
    assert text == ("As in [`docs/methods.md` §2](../docs/methods.md#2-id-guided-vlm-pruning), and "
                    "[docs/methods.md §1](../docs/methods.md#1-intrinsic-dimension-twonn); "
                    "![f](../results/02_prune/a.csv); [`docs/README.md`](../docs/README.md); "
                    "[out](https://example.org/x.md); [up](#top)")
    assert files == {"results/02_prune/a.csv"}


def test_code_blocks_and_links_already_made_are_left_alone(repo):
    text = ("```bash\ncat docs/methods.md §2\n```\n[`docs/methods.md` §2](docs/methods.md#2-id-guided-vlm-pruning)\n"
            "`vlmid/paths.py` §2 and `results/02_prune/` are code, not pages\n")
    assert _rewrite(repo, text, "README.md")[0] == text


def test_a_link_to_what_the_repository_does_not_hold_fails_naming_it(repo):
    with pytest.raises(ValueError, match="results/02_prune/gone.csv"):
        _rewrite(repo, "[gone](results/02_prune/gone.csv)", "README.md")
    with pytest.raises(ValueError, match=r"docs/methods.md §9 \(no such section\)"):
        _rewrite(repo, "docs/methods.md §9", "README.md")


def test_the_front_page_is_the_readme_intro_notebook_table_and_results_table():
    readme = (f"# Title\n\nIntro.\n\n## Two commands\n\nsetup\n\n## What each notebook answers\n\n| nb |\n|---|\n| `02_prune` |\n\n"
              f"## Results (tiny profile)\n\n{README_START}\n| NB | Verdict |\n|---|---|\n| 02 | **undecided** |\n{README_END}\n\n"
              f"## Layout\n\nnot shown\n")
    page = book.front_page(readme, ["notebooks/02_prune.ipynb"], "0123456789abcdef")
    assert page.startswith("# Title\n\nIntro.\n\nThis book shows the notebooks as they ran")
    assert "| 02 | **undecided** |" in page and "| `02_prune` |" in page and "commit `0123456789ab`)" in page
    assert "setup" not in page and "not shown" not in page
    assert "```{toctree}\n:hidden:\n:maxdepth: 1\n:caption: Notebooks\n\nnotebooks/02_prune\n```" in page
    with pytest.raises(ValueError, match="results:start"):
        book.front_page("# Title\n\n## Layout\n", [], "0" * 40)
    assert "commit `0123456789ab`, with uncommitted changes)" in book.front_page(readme, [], "0123456789abcdef-dirty")


def test_a_figure_a_cell_saved_is_shown_below_that_cell_and_checked_against_its_provenance(tmp_path):
    png = b"\x89PNG\r\n\x1a\n fake"
    (tmp_path / "a.png").write_bytes(png)
    (tmp_path / "b.png").write_bytes(png + b"b")
    sha = hashlib.sha256(png).hexdigest()
    (tmp_path / "provenance.json").write_text(json.dumps({"files": {"a.png": {"sha256": sha}}}))
    nb = {"cells": [{"cell_type": "code", "source": ["x = 1"], "outputs": []},
                    {"cell_type": "code", "source": ["out.figure(fig, \"a.png\")"],
                     "outputs": [{"output_type": "execute_result", "data": {"text/plain": ["PosixPath('a.png')"]}}]}]}
    shown, unplaced = book.notebook_with_figures(nb, tmp_path)
    assert shown["cells"][0]["outputs"] == []
    first, added = shown["cells"][1]["outputs"]
    assert first["output_type"] == "execute_result"                 # what ran stays as it ran
    assert base64.b64decode(added["data"]["image/png"]) == png
    assert unplaced == ["b.png"]                                    # no cell names it: the page shows it at the end

    (tmp_path / "a.png").write_bytes(png + b"changed")
    with pytest.raises(ValueError, match="a.png differ"):
        book.notebook_with_figures(nb, tmp_path)


# ---- the built book ----------------------------------------------------------------------------
def _executed(stem: str) -> dict:
    return json.loads((ROOT / "results" / "executed" / f"{stem}.ipynb").read_text(encoding="utf-8"))


def _outputs(nb: dict):
    return [o for c in nb["cells"] for o in c.get("outputs", [])]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return book.build(tmp_path_factory.mktemp("book"))


def test_the_book_builds_with_no_sphinx_warning_and_a_page_per_notebook(built):
    html = built["index"].parent
    stems = [p.stem for p in book.executed_notebooks()]
    assert stems == [p.stem for p in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))]   # every notebook
    assert built["warnings"] == []
    assert sorted(p.stem for p in (html / "notebooks").glob("*.html")) == stems
    assert all((html / "docs" / f"{d.stem}.html").exists() for d in (ROOT / "docs").glob("*.md"))
    assert (html / "results" / "REPORT.html").exists()
    assert built["figures"] == sum(len(list((ROOT / "results" / s).glob("*.png"))) for s in stems)


class _Assets(HTMLParser):
    """Every resource a page loads to render: scripts, style sheets, images, frames, media."""
    TAGS = {"script": "src", "link": "href", "img": "src", "iframe": "src", "source": "src", "video": "src",
            "audio": "src", "embed": "src", "object": "data"}

    def __init__(self):
        super().__init__()
        self.urls = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "link" and not {"stylesheet", "icon", "preload", "modulepreload"} & set((a.get("rel") or "").split()):
            return                                                  # a link to a page, not a resource
        if a.get(self.TAGS.get(tag, "")):
            self.urls.append(a[self.TAGS[tag]])


def test_no_page_needs_the_network_to_render(built):
    html = built["index"].parent
    pages = [p for p in html.rglob("*.html") if "_static" not in p.parts]
    remote = {}
    for page in pages:
        parser = _Assets()
        parser.feed(page.read_text(encoding="utf-8"))
        assert parser.urls, page
        remote.update({f"{page.relative_to(html)}: {u}": 1 for u in parser.urls if re.match(r"(https?:)?//", u)})
    assert remote == {}
    assert len(pages) >= 16                                          # 8 notebooks, 4 docs, report, front, index, search


# ---- in the browser ------------------------------------------------------------------------------
class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def site(built):
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(built["index"].parent)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser():
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip("needs Debian's chromium and chromium-driver (/usr/bin/chromium, /usr/bin/chromedriver): "
                    "bash run_all.sh installs them when run as root")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,1000", "--disable-dev-shm-usage",
                "--no-first-run", "--disable-extensions", "--disable-background-networking", "--disable-component-update"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(110)   # below the 120 s selenium waits for chromedriver's answer: a clear error
    driver.set_script_timeout(100)
    yield driver
    driver.quit()


# What a page shows, read in the browser once it has loaded (its sidebar is there) and MathJax has typeset it.
_READ_PAGE = """
const done = arguments[arguments.length - 1];
const read = () => {
  const main = document.querySelector('article') || document.body;
  const abs = a => a.href;
  done({
    href: location.href, title: document.title,
    images: [...main.querySelectorAll('img')].map(i => [i.currentSrc || i.src, i.complete, i.naturalWidth]),
    tables: [...main.querySelectorAll('table')].map(t => ({
        cls: t.className, header: [...t.querySelectorAll('thead th')].map(th => th.textContent.trim()),
        rows: t.querySelectorAll('tbody tr').length, links: [...t.querySelectorAll('a[href]')].map(abs)})),
    sidebar: [...document.querySelectorAll('.bd-docs-nav a[href]')].map(abs),
    links: [...document.querySelectorAll('a[href]')].map(a => a.getAttribute('href') ? abs(a) : ''),
    ids: [...document.querySelectorAll('[id]')].map(e => e.id),
    math: [...main.querySelectorAll('.math')].length,
    typeset: [...main.querySelectorAll('.math')].filter(m => m.querySelector('.mjx-chtml')).length,
    mathErrors: main.querySelectorAll('.mjx-merror, .MathJax_Error').length,
  });
};
const start = Date.now();
const typeset = () => !window.MathJax || (MathJax.isReady && MathJax.Hub.queue.pending === 0 && MathJax.Hub.queue.running === 0
    && [...document.querySelectorAll('.math')].every(m => m.querySelector('.mjx-chtml, .MathJax_Error')));
const ready = () => {
  const loaded = document.readyState === 'complete' && document.querySelector('.bd-docs-nav a');
  if (!(loaded && typeset()) && Date.now() - start < 60000) { setTimeout(ready, 200); } else { read(); }
};
ready();
"""


@pytest.fixture(scope="module")
def seen(built, site, browser):
    """Every HTML page of the site (not the theme's own files), opened in Chromium: what each shows."""
    html = built["index"].parent
    pages = sorted(p.relative_to(html).as_posix() for p in html.rglob("*.html") if "_static" not in p.parts)
    out = {}
    t0 = time.perf_counter()
    for rel in pages:
        t = time.perf_counter()
        browser.get(site + rel)
        facts = browser.execute_async_script(_READ_PAGE)
        print(f"  {rel}: {time.perf_counter() - t:.0f} s, {len(facts['images'])} images, {len(facts['tables'])} tables")
        # the browser asks every site for /favicon.ico on its own; the book has none, and no page asks for it
        facts["console"] = [e["message"] for e in browser.get_log("browser")
                            if e["level"] == "SEVERE" and "/favicon.ico " not in e["message"]]
        out[site + rel] = facts
    print(f"\n{len(pages)} pages opened in {time.perf_counter() - t0:.0f} s")
    return out


def _page(seen, site, rel):
    return seen[site + rel]


def test_every_page_loads_without_a_console_error(seen):
    assert {url: f["href"] for url, f in seen.items() if f["href"] != url} == {}
    assert {url: f["console"] for url, f in seen.items() if f["console"]} == {}
    assert all(f["title"] and f["sidebar"] and f["ids"] for f in seen.values())


def test_every_image_renders(seen):
    broken = {url: [i for i in f["images"] if not (i[1] and i[2] > 0)] for url, f in seen.items()}
    assert {u: b for u, b in broken.items() if b} == {}


@pytest.mark.parametrize("stem", [p.stem for p in book.executed_notebooks()])
def test_a_notebook_page_shows_its_figures_and_tables(seen, site, stem):
    page = _page(seen, site, f"notebooks/{stem}.html")
    nb = _executed(stem)
    # the figures: every image output of the executed notebook, and every PNG its run saved in results/<stem>/
    figures = sum(any(k.startswith("image/") for k in o.get("data", {})) for o in _outputs(nb))
    figures += len(list((ROOT / "results" / stem).glob("*.png")))
    assert figures >= 2
    assert len([i for i in page["images"] if i[1] and i[2] > 0]) >= figures
    # the tables: every DataFrame it printed, with its rows (one printed none: no verdict changed across builds)
    frames = ["".join(o.get("data", {}).get("text/html", "")) for o in _outputs(nb)]
    rows = [f.split("<tbody>")[1].split("</tbody>")[0].count("<tr") for f in frames if 'class="dataframe"' in f]
    assert len(rows) >= 2 and sum(rows) > 0
    assert [t["rows"] for t in page["tables"] if "dataframe" in t["cls"].split()] == rows
    # the title is the notebook's own
    assert page["title"].startswith(stem[:2])


def test_math_is_typeset_offline(seen):
    if not (book.MATHJAX / "MathJax.js").exists():
        pytest.skip(f"no MathJax at {book.MATHJAX} (Debian's libjs-mathjax; bash run_all.sh installs it as root)")
    with_math = {url: f for url, f in seen.items() if f["math"]}
    assert len(with_math) >= 5                                      # notebooks 00-05 write formulas
    assert {url: (f["typeset"], f["math"]) for url, f in with_math.items() if f["typeset"] != f["math"]} == {}
    assert sum(f["mathErrors"] for f in seen.values()) == 0


def test_the_front_page_shows_the_results_table_and_links_every_notebook(seen, site):
    front = _page(seen, site, "index.html")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index(README_START):readme.index(README_END)]
    rows = len([line for line in section.splitlines() if line.startswith("| ")]) - 1   # less the header
    results = [t for t in front["tables"] if "Verdict" in t["header"]]
    assert len(results) == 1 and results[0]["rows"] == rows > 20
    notebook_pages = {site + f"notebooks/{p.stem}.html" for p in book.executed_notebooks()}
    listed = [t for t in front["tables"] if t["header"][:1] == ["notebook"]]
    assert len(listed) == 1 and set(listed[0]["links"]) == notebook_pages


def test_the_sidebar_reaches_every_notebook_from_every_page(seen, site):
    notebook_pages = {site + f"notebooks/{p.stem}.html" for p in book.executed_notebooks()}
    for url, f in seen.items():
        assert notebook_pages <= {urldefrag(href)[0] for href in f["sidebar"]}, url   # the page itself is "#"


def test_no_internal_link_is_broken(seen, site):
    checked, broken = set(), []
    for url, f in seen.items():
        for href in f["links"]:
            if not href.startswith(site):
                continue                                            # another site (a paper's address), or javascript:
            target, anchor = urldefrag(href)
            if (target, anchor) in checked:
                continue
            checked.add((target, anchor))
            if target in seen:
                if anchor and anchor not in seen[target]["ids"]:
                    broken.append(f"{url} -> {href} (no element with that id)")
                continue
            try:
                with urllib.request.urlopen(urllib.request.Request(target, method="HEAD"), timeout=30) as r:
                    ok = r.status == 200
            except urllib.error.HTTPError:
                ok = False
            if not ok:
                broken.append(f"{url} -> {href}")
    assert broken == []
    assert len(checked) > 200                                       # the report alone links ~100 tables and figures
    print(f"\n{len(checked)} distinct internal links checked on {len(seen)} pages")
